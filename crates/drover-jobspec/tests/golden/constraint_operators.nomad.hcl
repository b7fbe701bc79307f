job "placement" {
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }
  constraint {
    attribute = "${attr.kernel.name}"
    operator  = "=="
    value     = "linux"
  }
  constraint {
    attribute = "${node.environment}"
    operator  = "!="
    value     = "qa"
  }
  constraint {
    attribute = "${attr.cpu.numcores}"
    operator  = "<"
    value     = 64
  }
  constraint {
    attribute = "${attr.cpu.numcores}"
    operator  = "<="
    value     = "64"
  }
  constraint {
    attribute = "${attr.memory.totalbytes}"
    operator  = ">"
    value     = "1000000"
  }
  constraint {
    attribute = "${attr.cpu.numcores}"
    operator  = ">="
    value     = 2
  }
  constraint {
    attribute = "${node.unique.name}"
    operator  = "regexp"
    value     = "^batch[0-9]{2}$"
  }
  constraint {
    attribute = "${node.hostgroup}"
    operator  = "glob"
    value     = "bi/batch/**"
  }
  constraint {
    attribute = "${attr.kernel.version}"
    operator  = "version"
    value     = ">= 5.4, < 7"
  }
  constraint {
    attribute = "${meta.features}"
    operator  = "set_contains"
    value     = "cvmfs,ssd"
  }
  constraint {
    operator = "distinct_hosts"
    value    = true
  }
  constraint {
    attribute = "${meta.rack}"
    operator  = "is_set"
  }
  constraint {
    attribute = "${meta.retired}"
    operator  = "is_not_set"
  }

  group "group" {
    constraint {
      operator = "distinct_hosts"
    }
    task "task" {
      driver = "exec"
      config { command = "/bin/true" }
      constraint {
        attribute = "${attr.unique.hostname}"
        operator  = "regexp"
        value     = "${meta.allowed_hosts}"
      }
    }
  }
}
