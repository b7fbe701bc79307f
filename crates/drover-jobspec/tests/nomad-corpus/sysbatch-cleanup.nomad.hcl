job "cleanup" {
  datacenters = ["dc1"]
  type        = "sysbatch"

  group "cleanup" {
    task "tmp" {
      driver = "raw_exec"
      config {
        command = "/usr/bin/find"
        args    = ["/tmp", "-mtime", "+7", "-delete"]
      }
    }
  }
}
