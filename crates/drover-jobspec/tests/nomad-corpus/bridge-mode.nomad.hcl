job "bridge" {
  datacenters = ["dc1"]
  group "g" {
    network {
      mode = "bridge"
      port "http" {
        to = 8080
      }
    }
    task "t" {
      driver = "exec"
      config {
        command = "/usr/bin/python3"
        args    = ["-m", "http.server", "8080"]
      }
    }
  }
}
