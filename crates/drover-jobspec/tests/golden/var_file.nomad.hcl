variable "version" { default = "1.0.0" }
variable "replicas" {
  type    = number
  default = 1
}

job "app" {
  group "app" {
    count = var.replicas
    task "app" {
      driver = "exec"
      config {
        command = "/opt/app/${var.version}/bin/app"
      }
    }
  }
}
