provider "openstack" {
  reboot  = "openstack server reboot {{node.nmae}}"
  rebuild = "rebuild {{node.meta.}} {{alert.name}}"
  consol  = "x"
}

notifier "chat" {
  webhok { url = "https://x" }
}

alert "a" {
  when {
    node { stauts = "down" }
  }
  severity = "urgent"
  notfy    = ["chat"]
}

hammer "h" {
  when { alert = "a" }
  action { reboot {} }
  mode = "automatic"
  limits { per_hur = 3 }
}

alrt "typo" {}
