job "keepalive" {
  datacenters = ["dc1"]
  type        = "system"

  group "all" {
    task "sleep" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["3000000"]
      }
      resources {
        cpu    = 20
        memory = 20
      }
    }
  }
}
