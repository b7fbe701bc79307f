data_dir         = "/var/lib/drover/server"
bind             = "0.0.0.0:4747"
advertise        = "10.0.0.11:4747"
bootstrap_expect = 3
join             = ["10.0.0.12:4747", "10.0.0.13:4747"]
disable_exec     = true
min_free_disk_mb = 2048
log_level        = "info,drover_server=debug"
insecure         = false
join_token_file  = "/etc/drover/server-join-token"
node_gc_after    = "14d"

heartbeat {
  interval = "2s"
  ttl      = "10s"
}

logs {
  retention   = "30d"
  max_mb      = 51200
  max_skew    = "1h"
  syslog_bind = "0.0.0.0:514"
}

tls {
  cert_validity = "7d"
}

audit {
  retention = "365d"
}
