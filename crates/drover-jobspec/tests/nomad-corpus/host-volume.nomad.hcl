job "scratch" {
  datacenters = ["dc1"]

  group "g" {
    volume "scratch" {
      type   = "host"
      source = "scratch"
    }
    task "t" {
      driver = "exec"
      volume_mount {
        volume      = "scratch"
        destination = "/scratch"
      }
      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }
    }
  }
}
