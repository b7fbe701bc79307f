# locals blocks, as in Nomad: values computed from variables and other
# locals, in any order.
variable "env" { default = "prod" }

locals {
  full_name = "${local.prefix}-web"
  prefix    = "${var.env}-site"
}

locals {
  ports = { http = 8080 }
  tags  = concat(["a"], [local.full_name])
}

job "locals" {
  meta {
    name = local.full_name
    port = local.ports.http
    tags = join(",", local.tags)
    node = "${local.prefix}/${node.unique.name}"
  }
  group "g" {
    task "t" {
      driver = "exec"
      config {
        command = "/bin/echo"
        args    = [local.prefix, "${local.ports["http"]}"]
      }
    }
  }
}
