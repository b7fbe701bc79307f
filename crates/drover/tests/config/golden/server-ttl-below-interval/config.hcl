data_dir = "/var/lib/drover/server"
heartbeat {
  interval = "10s"
}
