# A Nomad 0.x batch job with its task directly in the job, no group.
job "template" {
  datacenters = ["dc1"]
  type        = "batch"

  task "command" {
    driver = "exec"

    config {
      command = "cat"
      args    = ["local/template.out"]
    }

    template {
      destination = "local/template.out"
      data        = <<EOH
Hello from {{ env "NOMAD_ALLOC_ID" }}.
EOH
    }
  }
}
