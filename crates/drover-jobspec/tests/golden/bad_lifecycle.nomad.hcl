job "app" {
  group "app" {
    task "a" {
      lifecycle { hook = "prestrat" }
      driver = "exec"
      config { command = "/bin/true" }
    }
    task "b" {
      lifecycle { sidecar = true }
      driver = "exec"
      config { command = "/bin/true" }
    }
    task "c" {
      lifecycle {
        hook    = "poststop"
        sidecar = true
      }
      driver = "exec"
      config { command = "/bin/true" }
    }
    task "d" {
      lifecycle {
        hook    = "poststart"
        sidecar = "yes"
        order   = 1
      }
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
}
