# What stays refused: near misses of the names a file knows, and unknown
# names outside a plain ${…} in a string.
job "typos" {
  group "g" {
    count = foo
    task "t" {
      driver = "exec"
      config {
        command = "/bin/echo"
        args    = ["${vra.version}", "${nod.unique.name}", "${SLEEP_SECS + 1}", upper("${HOME}")]
      }
    }
  }
}
