provider "openstack" {
  reboot = "openstack server reboot {{node.name}}"
}

provider "ipmi" {
  console = "ipmitool sol activate {{node.meta.bmc}}"
}

notifier "ops-chat" {
  webhook { url = "https://chat.example.org" }
}

alert "tmp-full" {
  when {
    metric = "disk_used_percent{mount=\"/tmp\"}"
    above  = 95
  }
  notify  = ["ops-chta", "pager"]
  runbook = "runbooks/missing.md"
}

alert "tmp-full" {
  when {
    node { status = "down" }
  }
}

hammer "reboot" {
  when { alert = "tmp-ful" }
  action { reboot {} }
}

hammer "rebuild" {
  when { alert = "tmp-full" }
  action { rebuild { provider = "ipmi" } }
}

hammer "rebuild-2" {
  when { alert = "tmp-full" }
  action { rebuild { provider = "foreman" } }
  runbook = "../outside.md"
}
