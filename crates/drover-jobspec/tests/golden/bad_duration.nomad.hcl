job "durations" {
  group "g" {
    restart {
      interval = "30 minutes"
      delay    = 15
    }
    task "t" {
      driver       = "exec"
      kill_timeout = "5"
      config { command = "/bin/true" }
      service {
        check {
          type     = "tcp"
          port     = 80
          interval = "-5s"
          timeout  = "0s"
        }
      }
    }
  }
}
