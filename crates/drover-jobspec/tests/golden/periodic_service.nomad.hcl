job "cron-service" {
  periodic { crons = ["0 * * * *"] }
  group "g" {
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
}
