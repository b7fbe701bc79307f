job "policies" {
  group "g" {
    restart {
      attempts = 100
      interval = "1m"
      delay    = "15s"
      mode     = "sometimes"
    }
    reschedule {
      delay          = "1s"
      delay_function = "linear"
    }
    update {
      min_healthy_time  = "10m"
      healthy_deadline  = "5m"
      progress_deadline = "4m"
      auto_promote      = true
      health_check      = "check"
    }
    disconnect {
      reconcile = "best"
    }
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
      restart {
        attempts = 0
        mode     = "delay"
      }
    }
    task "u" {
      driver = "exec"
      config { command = "/bin/true" }
      restart {
        interval = "1s"
      }
    }
  }
}
