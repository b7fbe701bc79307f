job "meta" {
  meta = {
    team    = "daq"
    version = 3
    enabled = true
  }
  group "g" {
    meta {
      rack = "r1"
    }
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
      meta {
        note = <<EOT
multi
line
EOT
      }
      env = {
        A = "1"
      }
    }
  }
}
