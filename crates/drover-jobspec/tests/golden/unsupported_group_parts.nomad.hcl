job "groups" {
  group "g" {
    volume "data" {
      type   = "host"
      source = "data"
    }
    service {
      name = "group-level"
    }
    shutdown_delay = "5s"
    consul { cluster = "default" }
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
}
