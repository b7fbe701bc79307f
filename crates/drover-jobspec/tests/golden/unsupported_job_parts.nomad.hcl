job "everything" {
  region      = "global"
  namespace   = "default"
  node_pool   = "gpu"
  all_at_once = false
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
