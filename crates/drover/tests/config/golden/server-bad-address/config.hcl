data_dir = "/var/lib/drover/server"
bind = "localhost:4747"
logs {
  syslog_bind = "514"
}
