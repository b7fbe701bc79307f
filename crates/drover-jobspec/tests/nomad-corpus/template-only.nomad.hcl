job "render" {
  datacenters = ["dc1"]
  type        = "batch"

  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/bash"
        args    = ["local/run.sh"]
      }
      template {
        destination = "local/run.sh"
        data        = <<EOH
#!/bin/bash
echo "alloc $NOMAD_ALLOC_ID"
EOH
      }
    }
  }
}
