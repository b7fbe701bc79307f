data_dir = "/var/lib/drover/server"
heartbeat {
  interval = "2s"
}
heartbeat {
  ttl = "10s"
}
