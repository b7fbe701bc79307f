data_dir = "/var/lib/drover/server"
tls {
  cert    = "/etc/drover/tls/server.pem"
  key     = "/etc/drover/tls/server-key.pem"
  ca_cert = "/etc/drover/tls/ca.pem"
  ca_key  = "/etc/drover/tls/ca-key.pem"
}
