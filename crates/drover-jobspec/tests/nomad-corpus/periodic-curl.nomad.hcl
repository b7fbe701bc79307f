job "periodic-probe" {
  datacenters = ["dc1"]
  type        = "batch"

  periodic {
    cron             = "*/5 * * * *"
    prohibit_overlap = true
    time_zone        = "Europe/Zurich"
  }

  group "probe" {
    task "curl" {
      driver = "raw_exec"
      config {
        command = "/usr/bin/curl"
        args    = ["-fsS", "http://127.0.0.1:8080/health"]
      }
    }
  }
}
