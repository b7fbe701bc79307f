# Nomad's template and artifact blocks: rendered and downloaded by the
# agent before the task starts.
job "configured" {
  group "web" {
    network {
      port "http" {}
    }
    task "server" {
      driver = "raw_exec"
      config {
        command = "local/bin/server"
        args    = ["-config", "${NOMAD_TASK_DIR}/server.conf"]
      }
      artifact {
        source      = "https://releases.example.org/server-1.2.tar.gz"
        destination = "local/bin"
        options {
          checksum = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        }
      }
      artifact {
        source      = "https://releases.example.org/motd.txt"
        destination = "local/motd.txt"
        mode        = "file"
        headers     = { Authorization = "Bearer x" }
      }
      template {
        data          = <<EOF
listen = "127.0.0.1:{{ env "NOMAD_PORT_http" }}"
{{ range $i, $peer := split "," (env "PEERS") }}peer.{{ $i }} = {{ $peer | trimSpace }}
{{ end }}
EOF
        destination   = "${NOMAD_TASK_DIR}/server.conf"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        perms         = "0600"
        splay         = "10s"
      }
      template {
        data        = "LOG_LEVEL={{ env \"LEVEL\" | toUpper }}\n"
        destination = "secrets/app.env"
        env         = true
      }
      template {
        source          = "local/bin/defaults.tpl"
        destination     = "local/defaults.conf"
        left_delimiter  = "[["
        right_delimiter = "]]"
        change_mode     = "noop"
        wait {
          min = "2s"
          max = "10s"
        }
      }
      template {
        data        = "upstream = {{ key \"lb/upstream\" }}\n"
        destination = "local/upstream.conf"
        change_mode = "script"
        change_script {
          command       = "/local/reload.sh"
          args          = ["--graceful", "${NOMAD_TASK_NAME}"]
          timeout       = "20s"
          fail_on_error = true
        }
      }
    }
  }
}
