job "bad" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/true" }
      template {
        data        = <<EOF
addr = {{ range ls "service/addr" }}{{ .Value }}{{ end }}
EOF
        destination = "local/a.conf"
      }
      template {
        data        = "{{ range tree \"db\" }}{{ .Key }}{{ end }}"
        destination = "/etc/db.conf"
      }
      template {
        data        = "{{ with secret \"kv/bad\" }}{{ .Data.password }}{{ end }}"
        destination = "../../outside"
      }
      template {
        data          = "{{ if }}"
        source        = "local/x.tpl"
        change_mode   = "script"
        perms         = "rw-r--r--"
      }
      template {
        data        = "x"
        destination = "local/b"
        change_mode = "signal"
        uid         = 1000
      }
      template { destination = "local/c" }
      template {
        source      = "/etc/shadow"
        destination = "local/d"
      }
      template {
        data        = "x"
        destination = "local/e"
        wait {
          min = "30s"
          max = "5s"
        }
      }
      template {
        data        = "x"
        destination = "local/f"
        wait { min = "soon" }
      }
      template {
        data        = "x"
        destination = "local/g"
        change_mode = "restart"
        change_script {
          command = "/local/reload.sh"
          timeout = "24h"
        }
      }
      template {
        data        = "x"
        destination = "local/h"
        change_mode = "script"
        change_script {
          args          = ["-x"]
          timeout       = "soon"
          fail_on_error = "yes"
        }
      }
      artifact {
        source = "git::https://github.com/example/repo"
        mode   = "folder"
        options { checksum = "md5:abc" }
      }
      artifact { destination = "local/" }
    }
  }
}
