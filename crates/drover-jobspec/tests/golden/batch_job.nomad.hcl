job "nightly-report" {
  type = "batch"

  periodic {
    crons            = ["0 3 * * *", "30 12 * * MON-FRI"]
    time_zone        = "Europe/Zurich"
    prohibit_overlap = true
  }

  reschedule {
    attempts = 2
    interval = "1h"
  }

  group "report" {
    restart {
      attempts = 1
    }

    reschedule {
      delay          = "30s"
      delay_function = "exponential"
      max_delay      = "10m"
    }

    task "report" {
      driver = "exec"

      config {
        command = "/usr/local/bin/report"
        args    = ["--since", "24h"]
      }

      restart {
        delay = "1m"
        mode  = "fail"
      }

      service {
        check {
          type     = "script"
          command  = "/usr/local/bin/report"
          args     = ["--health"]
          interval = "1m"
          timeout  = "10s"
        }
      }
    }
  }
}
