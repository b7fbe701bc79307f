variable "version" { default = "1" }

job "refs" {
  group "g" {
    task "t" {
      driver = "exec"
      config {
        command = "/opt/${foo.bar + 1}/run"
        args = [
          "${var.verison}",
          "${upper(var.version)}",
          node.unique.name,
          "${attr.kernel.name == "linux"}",
        ]
      }
    }
  }
}
