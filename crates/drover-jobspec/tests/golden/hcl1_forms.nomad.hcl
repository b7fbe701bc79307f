# Forms of older (HCL 1) Nomad job files that drover reads: a block opened
# on the line of its first attribute, quoted names in meta blocks, and the
# short forms of constraints.
job "hcl1" { datacenters = ["dc1"]
  type = "batch"
  meta {
    "version" = "2"
    "build-id"="abc"
  }
  group "g" {
    constraint {
      distinct_hosts = true
    }
    constraint {
      attribute = "${attr.kernel.version}"
      version   = ">= 4.0"
    }
    constraint {
      attribute = "${node.unique.name}"
      regexp    = "^web-[0-9]+$"
    }
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
      meta {
        # Nomad evaluates uuidv4() and timestamp() while it reads the file.
        id_length   = length(uuidv4())
        time_length = length(timestamp())
      }
    }
  }
}
