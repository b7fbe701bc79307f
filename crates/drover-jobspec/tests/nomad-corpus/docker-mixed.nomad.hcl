job "mixed" {
  datacenters = ["dc1"]
  group "g" {
    task "sidecar" {
      driver = "docker"
      config {
        image = "busybox:1.36"
      }
    }
    task "main" {
      driver = "exec"
      config {
        command = "/bin/sleep"
        args    = ["600"]
      }
    }
  }
}
