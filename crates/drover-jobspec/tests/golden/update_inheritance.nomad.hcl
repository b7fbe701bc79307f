job "rolling" {
  update {
    max_parallel      = 3
    health_check      = "task_states"
    min_healthy_time  = "20s"
    healthy_deadline  = "3m"
    progress_deadline = "8m"
    auto_revert       = true
    canary            = 1
    auto_promote      = true
    stagger           = "10s"
  }
  migrate {
    max_parallel = 2
  }
  group "inherits" {
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
  group "refines" {
    update {
      max_parallel = 1
      canary       = 2
    }
    migrate {
      health_check     = "manual"
      min_healthy_time = "1s"
    }
    disconnect {
      lost_after = "1h"
      replace    = false
      reconcile  = "keep_original"
    }
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
}
