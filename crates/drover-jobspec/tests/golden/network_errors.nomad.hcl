job "web" {
  group "bridge" {
    network {
      mode = "bridge"
      port "http" {
        to = 8080
      }
    }
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }

  group "ports" {
    network {
      port "http" {
        static = 8080
        to     = 80
      }
      port "http" {}
      port "bad.label" {}
      port "big" {
        static = 70000
      }
      port "named" {
        host_network = "public"
      }
      dns {
        servers = ["1.1.1.1"]
      }
    }
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
      resources {
        network {
          port "http" {}
        }
      }
    }
  }

  group "shared" {
    network {
      port "a" { static = 9000 }
    }
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
      resources {
        network {
          port "a" {}
        }
      }
    }
  }
}
