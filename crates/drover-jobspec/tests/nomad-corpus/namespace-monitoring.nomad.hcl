job "fabio" {
  namespace   = "monitoring"
  datacenters = ["dc1"]
  type        = "system"

  group "fabio" {
    task "fabio" {
      driver = "exec"
      config {
        command = "/usr/local/bin/fabio"
      }
    }
  }
}
