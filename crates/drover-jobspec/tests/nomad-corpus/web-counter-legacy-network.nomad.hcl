job "counter" {
  datacenters = ["dc1"]
  type        = "service"

  group "web" {
    count = 1

    task "counter" {
      driver = "raw_exec"
      config {
        command = "/bin/bash"
        args    = ["-c", "/usr/local/bin/webcounter -port=${NOMAD_PORT_http} -ip=0.0.0.0"]
      }
      resources {
        cpu    = 20
        memory = 60
        network {
          port "http" {}
        }
      }
    }
  }
}
