job "extras" {
  namespace = "monitoring"
  node_pool = "gpu"

  group "too_many" {
    count = 20

    scaling {
      min = 1
      max = 10
    }

    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
      logs {
        disabled = true
      }
    }
  }

  group "inverted" {
    scaling {
      min = 5
      max = 2
    }
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }

  group "unbounded" {
    scaling {
      min = 1
    }
    max_client_disconnect = "5m"
    disconnect {
      lost_after = "1m"
    }
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
}
