# A task written directly in the job makes a group of its name, which must
# not exist already; its own problems are reported as in a group.
job "clash" {
  type = "batch"
  group "web" {
    task "web" {
      driver = "exec"
      config { command = "/bin/true" }
    }
  }
  task "web" {
    driver = "exec"
    config { command = "/bin/true" }
  }
  task "broken" {
    driver = "docker"
  }
}
