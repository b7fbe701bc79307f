job "helloworld" {
  datacenters = ["dc1"]

  group "helloworld" {
    count = 3

    network {
      port "http" {}
    }

    service {
      name     = "hello-app"
      port     = "http"
      provider = "nomad"
    }

    task "helloworld" {
      driver = "raw_exec"
      env {
        APP_PORT     = "${NOMAD_PORT_http}"
        APP_INSTANCE = "${NOMAD_ALLOC_INDEX}"
      }
      config {
        command = "/usr/bin/python3"
        args    = ["app.py"]
      }
      resources {
        cpu    = 50
        memory = 128
      }
    }
  }
}
