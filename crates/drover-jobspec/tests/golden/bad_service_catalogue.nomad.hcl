job "shop" {
  group "web" {
    service {
      name     = "consul-one"
      provider = "consul"
    }
    service {
      name     = "other-provider"
      provider = "nomda"
    }
    service {
      name         = "bridge"
      address_mode = "driver"
    }
    service {
      name         = "typo"
      address_mode = "hots"
    }
    service {
      name         = "host-address"
      address      = "10.0.0.1"
      address_mode = "host"
    }
    service {
      name    = "empty-address"
      address = " "
    }
    service {
      name        = "meta-shape"
      canary_meta = { a = "b" }
      canary_tags = "canary"
    }
    task "server" {
      driver = "raw_exec"
      config { command = "/bin/true" }
    }
  }
}
