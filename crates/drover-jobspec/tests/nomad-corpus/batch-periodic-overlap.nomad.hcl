job "report" {
  datacenters = ["dc1"]
  type        = "batch"

  periodic {
    cron             = "@hourly"
    prohibit_overlap = true
  }

  group "report" {
    task "build" {
      driver = "exec"
      config {
        command = "/bin/bash"
        args    = ["-c", "sleep 30 && date"]
      }
      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
