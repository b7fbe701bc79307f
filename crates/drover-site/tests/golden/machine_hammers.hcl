# Hammers that act on machines through a provider: rebuild (drained
# first), delete, create and replace (delete, then create with the same
# name and labels).
provider "cloud" {
  default = true
  create  = "cloud create {{node.name}} --hostgroup {{node.hostgroup}} --token {{join_token}}"
  rebuild = "cloud rebuild {{node.name}}"
  delete  = "cloud delete {{node.name}}"
}

alert "node-down" {
  when { node { status = "down" } }
}

hammer "rebuild-dead" {
  when { alert = "node-down" }
  action { rebuild {} }
  mode = "auto"
}

hammer "delete-dead" {
  when { node { event = "down" } }
  action { delete { provider = "cloud" } }
}

hammer "create-again" {
  when { node { event = "down" } }
  action { create {} }
}

hammer "replace-dead" {
  when { alert = "node-down" }
  action { replace { provider = "cloud" } }
  mode = "auto"
}
