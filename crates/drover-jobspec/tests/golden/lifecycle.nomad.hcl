# Nomad's lifecycle hooks: a setup step, a log shipper beside the main
# task, a warm-up once it runs and a clean-up after it stopped.
job "app" {
  group "app" {
    task "migrate" {
      lifecycle {
        hook    = "prestart"
        sidecar = false
      }
      driver = "raw_exec"
      config { command = "/usr/local/bin/migrate" }
    }
    task "shipper" {
      lifecycle {
        hook    = "prestart"
        sidecar = true
      }
      driver = "exec"
      config { command = "/usr/local/bin/shipper" }
    }
    task "server" {
      driver = "exec"
      config { command = "/usr/local/bin/server" }
    }
    task "warm" {
      lifecycle { hook = "poststart" }
      driver = "exec"
      config { command = "/usr/local/bin/warm" }
    }
    task "cleanup" {
      lifecycle { hook = "poststop" }
      driver = "exec"
      config { command = "/usr/local/bin/cleanup" }
    }
  }
}
