job "tasks" {
  group "g" {
    task "t" {
      driver = "exec"
      config {
        command  = "/bin/true"
        work_dir = "/srv"
      }
      vault { policies = ["x"] }
      lifecycle { hook = "prestart" }
      volume_mount {
        volume      = "data"
        destination = "/data"
      }
      csi_plugin {
        id   = "x"
        type = "node"
      }
      identity { env = true }
      dispatch_payload { file = "x" }
      consul {}
      scaling "cpu" {}
      leader = true
      resources {
        cpu        = 100
        memory     = 64
        memory_max = 128
        cores      = 2
        device "nvidia/gpu" {}
        network { mbits = 10 }
      }
      service {
        tags = ["web"]
        connect { native = true }
        check {
          type     = "http"
          port     = 8080
          path     = "/"
          interval = "10s"
          timeout  = "2s"
          header { Authorization = ["x"] }
          protocol = "https"
        }
      }
    }
  }
}
