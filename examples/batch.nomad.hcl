# A short batch job: runs once to completion on any node, with its output in
# `drover logs search --job report`.
job "report" {
  type = "batch"

  group "report" {
    restart {
      attempts = 1
      delay    = "5s"
      mode     = "fail"
    }

    task "uptime" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "echo \"report from ${node.unique.name}\"; uname -a; uptime; sleep 2"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
