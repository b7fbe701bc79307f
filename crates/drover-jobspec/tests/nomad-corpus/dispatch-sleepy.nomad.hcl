job "sleepy" {
  datacenters = ["dc1"]
  type        = "batch"

  parameterized {
    meta_optional = ["SLEEP_SECS"]
  }

  group "g" {
    task "sleep" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["${NOMAD_META_SLEEP_SECS}"]
      }
    }
  }
}
