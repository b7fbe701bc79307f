# A build a CI server launches with `drover job dispatch build -meta
# commit=… spec.json`: the payload lands in local/spec.json.
job "build" {
  type = "batch"
  parameterized {
    payload       = "required"
    meta_required = ["commit"]
    meta_optional = ["branch"]
  }
  group "build" {
    task "build" {
      driver = "raw_exec"
      config {
        command = "/usr/local/bin/build"
        args    = ["${NOMAD_TASK_DIR}/spec.json", "${NOMAD_META_commit}"]
      }
      dispatch_payload {
        file = "spec.json"
      }
    }
  }
}
