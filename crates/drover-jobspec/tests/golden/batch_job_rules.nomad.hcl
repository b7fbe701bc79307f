job "once" {
  type = "batch"
  update { max_parallel = 2 }
  periodic {
    crons = ["* * *", "@sometimes", "*/5 * * * *"]
  }
  group "g" {
    update { canary = 1 }
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
}
