job "template" {
  datacenters = ["dc1"]
  type        = "batch"

  group "g" {
    network {
      port "http" {}
    }
    task "render" {
      driver = "exec"
      config {
        command = "/bin/cat"
        args    = ["local/out.txt"]
      }
      template {
        data        = "port={{ env \"NOMAD_PORT_http\" }}"
        destination = "local/out.txt"
      }
    }
  }
}
