job "validated" {
  group "g" {
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
      env {
        BAD = "a\u0000b"
      }
      kill_timeout = "100000h"
    }
  }
}
