job "edge" {
  datacenters = ["edge"]

  group "edge" {
    max_client_disconnect = "1h"

    task "agent" {
      driver = "raw_exec"
      config {
        command = "/usr/local/bin/edge-agent"
      }
      kill_timeout = "30s"
      kill_signal  = "SIGTERM"
    }
  }
}
