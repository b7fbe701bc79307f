job "web" {
  group "frontend" {
    network {
      port "http" {}
    }
    service {
      port = "htp"
      check {
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"
      }
    }
    task "server" {
      driver = "raw_exec"
      config { command = "/bin/true" }
    }
  }
}
