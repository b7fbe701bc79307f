# Run once to completion on every Linux node, including nodes that join
# later (Nomad's sysbatch).
job "inventory" {
  type = "sysbatch"
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }
  group "collect" {
    task "collect" {
      driver = "raw_exec"
      config {
        command = "/usr/bin/lshw"
        args    = ["-json"]
      }
    }
  }
}
