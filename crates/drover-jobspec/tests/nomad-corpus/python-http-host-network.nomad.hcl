job "http" {
  datacenters = ["dc1"]
  type        = "service"

  group "http" {
    count = 1

    network {
      mode = "host"
      port "http" {}
    }

    task "app" {
      driver = "raw_exec"
      config {
        command = "/usr/bin/python3"
        args    = ["-m", "http.server", "${NOMAD_PORT_http}"]
      }
      resources {
        cpu    = 100
        memory = 128
      }
    }
  }
}
