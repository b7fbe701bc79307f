job "extras" {
  region      = "global"
  namespace   = "default"
  node_pool   = "default"
  all_at_once = false
  datacenters = ["dc1"]

  meta {
    team = "ops"
  }

  group "app" {
    count = 3

    max_client_disconnect = "5m"

    ephemeral_disk {
      size   = 500
      sticky = true
    }

    scaling {
      enabled = true
      min     = 2
      max     = 10

      policy {
        cooldown = "1m"
      }
    }

    meta {
      tier = "web"
    }

    task "server" {
      driver = "exec"

      config {
        command = "/usr/bin/app"
      }

      logs {
        max_files     = 3
        max_file_size = 15
      }

      meta {
        owner = "web-team"
      }
    }
  }
}
