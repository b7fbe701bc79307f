job "worker" {
  datacenters = ["dc1"]

  group "worker" {
    count = 2

    scaling {
      enabled = true
      min     = 1
      max     = 10
      policy {
        cooldown = "1m"
      }
    }

    task "worker" {
      driver = "exec"
      config {
        command = "/usr/local/bin/worker"
      }
    }
  }
}
