variable "version" { default = "3.2.1" }

job "refs" {
  meta {
    node_name = "${node.unique.name}"
    mixed     = "/opt/${var.version}/bin/${node.unique.name}"
  }
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/opt/${var.version}/bin/run"
        args = [
          "--node=${node.unique.name}",
          "--kernel=${attr.kernel.name}",
          "--rack=${meta.rack}",
          "--home=${env.HOME}",
          "--alloc=${NOMAD_ALLOC_ID}",
          "--task=${DROVER_TASK_NAME}",
          "--index=${meta["rack"]}",
          "--shell=$${PATH}",
          "--spaces=${ node.unique.id }",
        ]
      }
      env {
        NODE    = "${node.unique.name}"
        ZONE    = "${node.zone}-${var.version}"
        LITERAL = "$${node.unique.name}"
      }
      user = "${meta.run_as}"
    }
  }
}
