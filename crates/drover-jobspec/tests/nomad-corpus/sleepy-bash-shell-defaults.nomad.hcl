# An HCL 1-era raw_exec job whose script gives its variables shell defaults
# and reads a function's positional parameter.
job "sleepy-bash" {
  datacenters = ["dc1"]
  type        = "system"

  group "group" {
    task "sleepy" {
      driver = "raw_exec"

      config {
        command = "/bin/bash"
        args    = ["local/sleepy.sh"]
      }

      template {
        destination = "local/sleepy.sh"
        data        = <<EOH
#!/bin/bash
SLEEP_SECS=${SLEEP_SECS:-2} # provide default of 2 seconds
interruptable_sleep() { for i in $(seq 1 $((2*${1}))); do sleep .5; done; }
echo "$(date) - Starting. SLEEP_SECS=${SLEEP_SECS}"
while true; do interruptable_sleep ${SLEEP_SECS}; done
EOH
      }

      resources {memory=10 network { port "status" {} } }
    }
  }
}
