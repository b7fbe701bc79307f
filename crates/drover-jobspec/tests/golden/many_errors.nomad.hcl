variable "replicas" { default = 2 }

job "my job" {
  type     = "servce"
  priority = 150
  group "web" {
    count = "two"
    task "web" {
      driver = "podman"
      config {
        command = ""
      }
      resources {
        cpu    = 0
        memory = 4
      }
      kill_signal = "TERM"
      template { data = "x" }
    }
    task "web" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
  group "web" {
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
  group "empty" {}
}
