job "drivers" {
  group "g" {
    task "docker" {
      driver = "docker"
      config { command = "/bin/true" }
    }
    task "java" {
      driver = "java"
      config { command = "/bin/true" }
    }
    task "typo" {
      driver = "raw_exce"
      config { command = "/bin/true" }
    }
    task "missing" {
      config { command = "/bin/true" }
    }
    task "noconfig" {
      driver = "exec"
    }
  }
}
