locals {
  binary = "/usr/local/bin/worker"
}

job "locals" {
  datacenters = ["dc1"]
  group "g" {
    task "t" {
      driver = "exec"
      config {
        command = local.binary
      }
    }
  }
}
