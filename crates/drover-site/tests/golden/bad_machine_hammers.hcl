# Machine hammers whose provider lacks the commands they need, or names
# one that does not exist.
provider "cloud" {
  default = true
  reboot  = "cloud reboot {{node.name}}"
}

hammer "replace-dead" {
  when { node { event = "down" } }
  action { replace {} }
}

hammer "delete-dead" {
  when { node { event = "down" } }
  action { delete { provider = "cluod" } }
}

hammer "create-named" {
  when { node { event = "down" } }
  action { create { provider = "cloud" } }
}

hammer "two-machines" {
  when { node { event = "down" } }
  action {
    delete {}
    create {}
  }
}
