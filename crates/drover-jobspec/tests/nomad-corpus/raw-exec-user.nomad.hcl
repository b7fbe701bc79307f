job "whoami" {
  datacenters = ["dc1"]
  type        = "batch"

  group "g" {
    task "whoami" {
      driver = "raw_exec"
      user   = "nobody"
      config {
        command = "/usr/bin/id"
      }
    }
  }
}
