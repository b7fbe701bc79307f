job "spread" {
  affinity {
    attribute = "${node.zone}"
    value     = "zone-a"
  }
  spread {
    attribute = "${node.zone}"
    target "zone-a" { percent = 50 }
    target "zone-b" { percent = 30 }
  }
  group "workers" {
    count = 10
    affinity {
      attribute = "${meta.ssd}"
      operator  = "="
      value     = "true"
      weight    = -30
    }
    spread {
      attribute = "${node.unique.name}"
      weight    = 80
    }
    task "worker" {
      driver = "exec"
      config { command = "/bin/worker" }
      affinity {
        attribute = "${attr.cpu.arch}"
        operator  = "regexp"
        value     = "x86_64|amd64"
        weight    = 100
      }
    }
  }
}
