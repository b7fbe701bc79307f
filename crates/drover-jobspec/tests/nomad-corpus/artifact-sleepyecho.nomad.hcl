job "sleepyecho" {
  datacenters = ["dc1"]

  group "group" {
    task "sleepyecho" {
      driver = "exec"
      config {
        command = "local/sleepyecho.sh"
      }
      artifact {
        source = "https://example.org/sleepyecho.sh"
      }
    }
  }
}
