servers      = ["10.0.0.11:4747", "10.0.0.12:4747"]
data_dir     = "/var/lib/drover/agent"
name         = "batch01"
hostgroup    = "bi/batch/gridworker"
environment  = "production"
owner        = "platform-team"
zone         = "dc1"
disable_exec = true
exec_user    = "drover-exec"
join_token   = "secret-token"
log_level    = "warn"

meta = {
  rack       = "r12"
  "gpu.kind" = "a100"
}

logs {
  files       = ["/var/log/syslog", "/var/log/app/*.log"]
  syslog_bind = "127.0.0.1:5514"
  journal     = true
  spool_mb    = 512
  partial_line_idle = "2s"
}
