data_dir = "/var/lib/drover/server"
heartbeat {
  interval = "4 seconds"
  ttl = 8
}
