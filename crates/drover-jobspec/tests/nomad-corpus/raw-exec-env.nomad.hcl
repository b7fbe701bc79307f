job "env" {
  datacenters = ["dc1"]
  type        = "batch"

  group "env" {
    task "print" {
      driver = "raw_exec"
      config {
        command = "/usr/bin/env"
      }
      env {
        GREETING = "hello"
        NODE     = "${node.unique.name}"
      }
    }
  }
}
