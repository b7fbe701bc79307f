job "cleanup" {
  type = "batch"
  periodic {
    cron    = "@daily"
    enabled = false
  }
  group "cleanup" {
    task "cleanup" {
      driver = "raw_exec"
      config { command = "/usr/bin/find"  args = ["/tmp", "-mtime", "+7", "-delete"] }
    }
  }
}
