job "groups" {
  group "g" {
    network {
      port "http" { static = 8080 }
    }
    volume "data" {
      type   = "host"
      source = "data"
    }
    scaling {
      min = 1
      max = 3
    }
    service {
      name = "group-level"
    }
    ephemeral_disk { size = 300 }
    shutdown_delay = "5s"
    consul { cluster = "default" }
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
}
