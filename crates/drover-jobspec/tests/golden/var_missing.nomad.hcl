variable "version" {
  description = "no default, and nobody sets it"
}

job "app" {
  group "app" {
    task "app" {
      driver = "exec"
      config { command = "/opt/app/${var.version}/bin/app" }
    }
  }
}
