# A service that says hello every five seconds: the job `drover dev` suggests
# trying first.
#
#   drover job run examples/hello.nomad.hcl
#   drover logs tail -f --job hello
#
# `${node.unique.name}` is a runtime reference: drover keeps it as written and
# the agent replaces it with the node's name when it starts the task. `$(date)`
# is shell syntax and needs no escaping; a shell `${VAR}` would be written
# `$${VAR}` so that drover leaves it to the shell.
job "hello" {
  type = "service"

  group "hello" {
    count = 1

    task "hello" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "while true; do echo \"hello from ${node.unique.name} at $(date)\"; sleep 5; done"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
