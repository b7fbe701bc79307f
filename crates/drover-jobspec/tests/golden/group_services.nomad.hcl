# A group-level service on a port label, with tags and a check, as Nomad
# writes it; the agent probes the port allocated to each allocation.
job "web" {
  group "frontend" {
    count = 2
    network {
      port "http" {}
      port "admin" { static = 9000 }
    }
    service {
      name = "frontend"
      port = "http"
      tags = ["web", "v1"]
      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
      check {
        name     = "admin"
        type     = "tcp"
        port     = "admin"
        interval = "30s"
        timeout  = "2s"
      }
    }
    task "server" {
      driver = "raw_exec"
      config {
        command = "/usr/bin/python3"
        args    = ["-m", "http.server", "${NOMAD_PORT_http}"]
      }
    }
  }
}
