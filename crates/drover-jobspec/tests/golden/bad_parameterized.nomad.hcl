job "build" {
  parameterized {
    payload       = "mandatory"
    meta_required = ["commit"]
    meta_optional = ["commit"]
  }
  group "build" {
    task "build" {
      driver = "raw_exec"
      config { command = "/usr/local/bin/build" }
      dispatch_payload { file = "../../etc/passwd" }
    }
    task "other" {
      driver = "raw_exec"
      config { command = "/usr/local/bin/build" }
      dispatch_payload {}
    }
  }
}
