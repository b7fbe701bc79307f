servers = ["10.0.0.11:4747"]
data_dir = "/var/lib/drover/agent"
hostgrop = "bi/batch"
colour = "blue"
logs {
  journl = true
}
