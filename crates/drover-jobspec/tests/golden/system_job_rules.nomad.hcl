job "daemon" {
  type = "system"
  reschedule { attempts = 3 }
  periodic { crons = ["* * * * *"] }
  group "g" {
    count = 3
    reschedule { attempts = 1 }
    update { max_parallel = 5 }
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
}
