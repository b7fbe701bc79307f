job "node-exporter" {
  datacenters = ["dc1"]
  type        = "system"

  group "system" {
    network {
      port "exporter" {
        static = 9100
      }
    }

    task "node-exporter" {
      driver = "raw_exec"
      config {
        command = "/usr/local/bin/node_exporter"
        args    = ["--web.listen-address=:${NOMAD_PORT_exporter}"]
      }
      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}
