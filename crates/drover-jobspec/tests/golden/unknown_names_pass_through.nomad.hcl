# Like Nomad, a plain ${NAME} of a name the file does not declare stays as
# text for the task's runtime: the shell expands SLEEP_SECS and VAULT_TOKEN,
# the agent NOMAD_META_owner.
variable "version" { default = "1.2" }

job "passthrough" {
  type = "batch"
  meta {
    owner = "ops"
  }
  group "g" {
    task "sleepy" {
      driver = "raw_exec"
      config {
        command = "/bin/bash"
        args    = ["-c", "sleep ${SLEEP_SECS}; echo ${VAULT_TOKEN} ${var.version} ${NOMAD_META_owner}"]
      }
      env {
        SLEEP_SECS = "5"
        TOKEN_COPY = "${VAULT_TOKEN}"
        DATA_PATH  = "${Data.path}"
      }
      template {
        destination = "local/run.sh"
        data        = <<EOH
#!/bin/bash
SLEEP=${SLEEP_SECS}
echo "${node.unique.name} ${var.version}"
EOH
      }
    }
  }
}
