job "c" {
  group "g" {
    constraint {
      distinct_hosts = true
      operator       = "distinct_hosts"
    }
    constraint {
      version = ">= 1.0"
    }
    constraint {
      attribute      = "${meta.rack}"
      distinct_hosts = "yes"
    }
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
}
