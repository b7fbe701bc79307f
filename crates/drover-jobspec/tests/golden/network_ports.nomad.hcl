job "web" {
  group "site" {
    count = 2

    network {
      mode = "host"
      port "http" {}
      port "admin" {
        static = 9000
      }
      port "metrics" {
        static = 9100
        to     = 9100
      }
    }

    task "server" {
      driver = "raw_exec"

      config {
        command = "/usr/bin/python3"
        args    = ["-m", "http.server", "${NOMAD_PORT_http}"]
      }

      env {
        ADMIN_ADDR = "${NOMAD_ADDR_admin}"
      }
    }

    task "legacy" {
      driver = "exec"

      config {
        command = "/usr/local/bin/exporter"
        args    = ["--listen", ":${NOMAD_PORT_exporter}"]
      }

      resources {
        cpu    = 200
        memory = 64

        network {
          mbits = 10
          port "exporter" {}
        }
      }
    }
  }
}
