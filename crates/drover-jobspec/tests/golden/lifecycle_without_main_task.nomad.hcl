job "app" {
  group "app" {
    task "setup" {
      lifecycle { hook = "prestart" }
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
}
