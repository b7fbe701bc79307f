job "everything" {
  node_pool   = "gpu"
  vault { policies = ["x"] }
  consul { namespace = "x" }
  multiregion {
    strategy { max_parallel = 1 }
  }
  parameterized {
    payload = "required"
  }
  ui { description = "x" }
  group "g" {
    task "t" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
}
