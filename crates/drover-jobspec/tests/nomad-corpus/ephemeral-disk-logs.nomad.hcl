job "grafana" {
  datacenters = ["dc1"]
  region      = "global"

  meta {
    owner = "monitoring"
  }

  group "grafana" {
    ephemeral_disk {
      size = 300
    }
    network {
      port "http" {
        static = 3000
      }
    }
    task "grafana" {
      driver = "exec"
      logs {
        max_files     = 10
        max_file_size = 15
      }
      config {
        command = "/usr/sbin/grafana-server"
        args    = ["--homepath", "/usr/share/grafana"]
      }
      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
