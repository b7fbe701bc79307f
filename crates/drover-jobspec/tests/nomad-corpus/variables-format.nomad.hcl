variable "version" {
  type    = string
  default = "1.4.2"
}

variable "instances" {
  type    = number
  default = 2
}

job "api" {
  datacenters = ["dc1"]

  group "api" {
    count = var.instances

    network {
      port "http" {}
    }

    task "api" {
      driver = "exec"
      config {
        command = format("/opt/api/%s/bin/api", var.version)
        args    = ["--listen", ":${NOMAD_PORT_http}", "--name", upper("api")]
      }
    }
  }
}
