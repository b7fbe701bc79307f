variable "replicas" { type = number }
variable "ports" { type = list(number) }
variable "mode" { type = set(string) }
variable "weird" { type = strng }
variable "bad_default" {
  type    = number
  default = "many"
}
variable "uses_var" { default = var.replicas }
variable "replicas" { default = 2 }
variable "fine" {
  default    = "x"
  validation { condition = true }
}

job "app" {
  group "app" {
    count = var.replicas
    task "app" {
      driver = "exec"
      config {
        command = "/bin/app"
        args    = ["${var.ports}", "${var.nope}", var.bad_default]
      }
    }
  }
}
