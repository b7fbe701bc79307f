job "canary" {
  datacenters = ["dc1"]

  update {
    max_parallel     = 1
    canary           = 1
    min_healthy_time = "1s"
    auto_revert      = false
  }

  group "g" {
    count = 3

    reschedule {
      attempts       = 3
      interval       = "5m"
      delay          = "5s"
      delay_function = "constant"
      unlimited      = false
    }

    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "sleep 15000"]
      }
    }
  }
}
