job "foo" {
  datacenters = ["dc1"]

  group "foo" {
    count = 2

    network {
      port "http" {}
      port "admin" {
        static = 9001
      }
    }

    task "foo" {
      driver = "raw_exec"
      config {
        command = "/usr/local/bin/http-echo"
        args    = ["-listen", ":${NOMAD_PORT_http}", "-text", "hello from ${NOMAD_ADDR_http}"]
      }
      env {
        ADMIN_PORT = "${NOMAD_HOST_PORT_admin}"
      }
    }
  }
}
