variable "version" { default = "1.0" }

job "app" {
  group "app" {
    task "app" {
      driver = "exec"
      config { command = "/opt/app/${var.version}/bin/app" }
    }
  }
}
