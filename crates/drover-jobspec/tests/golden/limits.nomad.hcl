job "limits" {
  type = "batch"
  periodic {
    crons     = ["61 25 * * *"]
    time_zone = "Mars/Olympus"
  }
  group "g" {
    count = 4294967295
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
}
