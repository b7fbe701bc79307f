job "inventory" {
  type = "sysbatch"
  group "collect" {
    count = 3
    reschedule { attempts = 1 }
    update { max_parallel = 2 }
    task "collect" {
      driver = "raw_exec"
      config { command = "/usr/bin/lshw" }
    }
  }
}
