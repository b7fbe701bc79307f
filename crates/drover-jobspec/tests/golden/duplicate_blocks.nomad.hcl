job "dups" {
  update { max_parallel = 1 }
  update { max_parallel = 2 }
  group "g" {
    restart { attempts = 1 }
    restart { attempts = 2 }
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
      config { command = "/bin/false" }
      resources "big" { cpu = 1000 }
    }
  }
}
