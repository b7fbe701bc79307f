variable "env" { default = local.name }

locals {
  name   = "web"
  first  = local.second
  second = "${local.first}-x"
  broken = upper(1, 2)
  nested {
    a = 1
  }
}

locals "labelled" {
  name = "again"
}

job "locals" {
  meta {
    a = local.nmae
    b = local.broken
    c = local.nosuch
  }
  group "g" {
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
}
