job "broken" {
  group "g" {
    task "t" {
      driver = "exec"
      config {
        command = "/bin/true"
        args = ["a", "b"
      }
    }
  }
}
