job "spread" {
  datacenters = ["dc1"]
  type        = "batch"

  meta {
    version = "2"
  }

  group "nodes" {
    count = 6

    spread {
      attribute = "${node.unique.name}"
    }

    task "hostname" {
      driver = "raw_exec"
      config {
        command = "/bin/hostname"
      }
    }
  }
}
