data_dir = "/var/lib/drover/server"
tls {
  ca_cert = "/etc/drover/ca.pem"
  ca_key  = "/etc/drover/ca-key.pem"
}
