job "types" {
  datacenters = "dc1"
  meta = ["a"]
  group "-bad" {
    count = -1
    meta {
      list = ["x"]
      nested { a = 1 }
    }
    task "" {
      driver = "exec"
      config {
        command = "/bin/true"
        args    = "not a list"
      }
      env = {
        OK   = true
        LIST = [1]
      }
      restart = { attempts = 1 }
      config = 1
    }
    task "two" "labels" {
      driver = "exec"
    }
  }
}
