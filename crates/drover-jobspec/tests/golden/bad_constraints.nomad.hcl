job "constraints" {
  constraint {
    attribute = "${node.unique.name}"
    operator  = "regexp"
    value     = "batch[0-9"
  }
  constraint {
    attribute = "${attr.kernel.version}"
    operator  = "version"
    value     = "newer than 5"
  }
  constraint {
    attribute = "${node.unique.id}"
    operator  = "distinct_hosts"
  }
  constraint {
    operator = "distinct_hosts"
    value    = "maybe"
  }
  constraint {
    attribute = "${meta.rack}"
    operator  = "is_set"
    value     = "r1"
  }
  constraint {
    attribute = "${meta.rack}"
    operator  = "~="
    value     = "r1"
  }
  constraint {
    attribute = "${meta.rack}"
    operator  = "distinct_property"
  }
  constraint {
    operator = "regexp"
    value    = "x"
  }
  constraint {
    attribute = "${meta.rack}"
  }
  constraint {
    attribute = "${meta.rack}"
    operator  = "semver"
    value     = ">= 1"
  }
  affinity {
    attribute = "${node.zone}"
    value     = "a"
    weight    = 0
  }
  affinity {
    attribute = "${node.zone}"
    operator  = "is_set"
    value     = "a"
  }
  affinity {
    attribute = "${node.zone}"
    value     = "a"
    weight    = 150
  }
  spread {
    weight = 50
  }
  spread {
    attribute = "${node.zone}"
    target "a" { percent = 70 }
    target "b" { percent = 40 }
  }
  spread {
    attribute = "${node.zone}"
    target "a" { percent = 10 }
    target "a" { percent = 10 }
    target "c" {}
  }
  group "g" {
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
}
