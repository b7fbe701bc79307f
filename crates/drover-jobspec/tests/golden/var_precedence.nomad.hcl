# default < DROVER_VAR_* < -var-file < -var
variable "from_default" { default = "default" }
variable "from_env" { default = "default" }
variable "from_file" { default = "default" }
variable "from_cli" { default = "default" }
variable "cli_twice" {}
variable "replicas" { type = number }
variable "racks" { type = list(string) }
variable "labels" {
  type    = map(string)
  default = { tier = "web" }
}
variable "debug" {
  type    = bool
  default = false
}

job "precedence" {
  meta {
    from_default = var.from_default
    from_env     = var.from_env
    from_file    = var.from_file
    from_cli     = var.from_cli
    cli_twice    = var.cli_twice
    racks        = "${var.racks[0]},${var.racks[1]}"
    tier         = var.labels["tier"]
    debug        = var.debug
  }
  group "web" {
    count = var.replicas
    task "web" {
      driver = "exec"
      config {
        command = "/usr/bin/web"
        args    = var.racks
      }
    }
  }
}
