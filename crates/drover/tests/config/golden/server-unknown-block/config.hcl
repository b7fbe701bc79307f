data_dir = "/var/lib/drover/server"
hearbeat {
  ttl = "10s"
}
