job "secret" {
  datacenters = ["dc1"]

  group "g" {
    task "t" {
      driver = "raw_exec"
      vault {
        policies = ["app"]
      }
      config {
        command = "/bin/sleep"
        args    = ["600"]
      }
      template {
        data        = "{{ with secret \"kv/app\" }}{{ .Data.password }}{{ end }}"
        destination = "secrets/pw"
      }
    }
  }
}
