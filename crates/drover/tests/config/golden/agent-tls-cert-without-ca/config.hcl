servers  = ["10.0.0.11:4747"]
data_dir = "/var/lib/drover/agent"
tls {
  cert = "/etc/drover/tls/node.pem"
  key  = "/etc/drover/tls/node-key.pem"
}
