job "checks" {
  group "g" {
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
      service {
        check {
          type     = "http"
          port     = 8080
          interval = "10s"
          timeout  = "2s"
        }
        check {
          type     = "tcp"
          interval = "10s"
          timeout  = "2s"
        }
        check {
          type     = "script"
          port     = 80
          interval = "10s"
          timeout  = "2s"
        }
        check {
          type     = "tcp"
          port     = "http"
          path     = "/"
          interval = "10s"
          timeout  = "2s"
        }
        check {
          type = "grpc"
          port = 70000
        }
        check {
          type            = "htp"
          expected_status = 42
          interval        = "10s"
          timeout         = "2s"
        }
        check {
          port     = 22
          interval = "10s"
          timeout  = "2s"
        }
      }
      service {
        port = 80
        check {
          type     = "tcp"
          interval = "10s"
          timeout  = "2s"
        }
        check {
          type     = "tcp"
          interval = "20s"
          timeout  = "2s"
        }
      }
    }
  }
}
