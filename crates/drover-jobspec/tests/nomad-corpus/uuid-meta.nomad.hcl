job "redeploy" {
  datacenters = ["dc1"]

  meta {
    run_uuid = "${uuidv4()}"
  }

  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["infinity"]
      }
    }
  }
}
