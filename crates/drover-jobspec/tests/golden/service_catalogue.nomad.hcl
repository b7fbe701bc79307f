job "shop" {
  group "web" {
    network {
      port "http" {}
    }
    service {
      name         = "shop-web"
      port         = "http"
      provider     = "nomad"
      address_mode = "host"
      tags         = ["v1", "public"]
      canary_tags  = ["canary"]
      meta {
        version = "1"
        team    = "shop"
      }
      check {
        type     = "http"
        path     = "/health"
        interval = "5s"
        timeout  = "1s"
      }
    }
    task "server" {
      driver = "raw_exec"
      config {
        command = "/usr/bin/python3"
        args    = ["-m", "http.server", "${NOMAD_PORT_http}"]
      }
      service {
        name         = "shop-admin-${NOMAD_ALLOC_INDEX}"
        port         = 9000
        address      = "10.0.0.${NOMAD_ALLOC_INDEX}"
        address_mode = "auto"
        meta         = { weight = 3 }
      }
    }
  }
}
