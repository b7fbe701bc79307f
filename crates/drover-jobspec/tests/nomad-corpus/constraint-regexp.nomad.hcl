job "kernel" {
  datacenters = ["dc1"]
  type        = "batch"

  constraint {
    attribute = "${attr.kernel.version}"
    operator  = "regexp"
    value     = "^5\\."
  }

  group "g" {
    task "uname" {
      driver = "exec"
      config {
        command = "/bin/uname"
        args    = ["-a"]
      }
    }
  }
}
