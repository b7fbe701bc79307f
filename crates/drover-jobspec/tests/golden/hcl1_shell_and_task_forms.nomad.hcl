# More forms of older (HCL 1) Nomad job files: shell parameter expansions
# (`${NAME:-default}`, `${#NAME}`, `${1}`) kept as text for the task's shell, a task
# written directly in the job (a group of the same name holding it), and a
# one-line block with no blank after its brace.
job "hcl1-shell" {
  type = "batch"
  task "sleepy" {
    driver = "raw_exec"
    config {
      command = "/bin/bash"
      args    = ["-c", "sleep ${SLEEP_SECS:-2}; echo ${NOMAD_ALLOC_ID}"]
    }
    template {
      destination = "local/sleepy.sh"
      data        = <<EOH
SLEEP_SECS=${SLEEP_SECS:-2} # a default of 2 seconds
sleepy() { sleep ${1}; }
escaped() { sleep $${1} $${#X}; }
echo "${#SLEEP_SECS} ${SLEEP_SECS} ${HOME:?unset} ${PATH//:/ }"
EOH
    }
    resources {memory=10 network { port "sample" {} } }
  }
}
