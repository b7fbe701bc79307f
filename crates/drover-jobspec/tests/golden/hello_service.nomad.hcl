job "hello" {
  datacenters = ["dc1", "dc2"]
  priority    = 70
  name        = "Hello world"

  meta = {
    owner = "ops"
  }

  update {
    max_parallel     = 2
    min_healthy_time = "15s"
    auto_revert      = true
  }

  group "web" {
    count = 3

    task "server" {
      driver = "raw_exec"
      user   = "www-data"

      config {
        command = "/usr/bin/python3"
        args    = ["-m", "http.server", "8080"]
      }

      env {
        GREETING = "hello"
        PORT     = 8080
      }

      resources {
        cpu    = 250
        memory = 128
      }

      kill_timeout = "20s"
      kill_signal  = "SIGTERM"

      service {
        port = 8080

        check {
          type     = "http"
          path     = "/"
          interval = "10s"
          timeout  = "2s"
        }

        check {
          name            = "index has hello"
          type            = "http"
          path            = "/index.html"
          method          = "HEAD"
          expected_status = 200
          body            = "hello"
          address         = "localhost"
          interval        = "30s"
          timeout         = "5s"

          check_restart {
            limit = 3
          }
        }
      }

      service {
        name = "hello-admin"

        check {
          type     = "tcp"
          port     = 9090
          interval = "5s"
          timeout  = "1s"

          check_restart {
            limit           = 2
            grace           = "30s"
            ignore_warnings = true
          }
        }
      }
    }
  }
}
