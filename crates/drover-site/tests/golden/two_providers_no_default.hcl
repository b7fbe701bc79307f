provider "openstack" {
  reboot = "openstack server reboot {{node.name}}"
}

provider "ipmi" {
  reboot  = "ipmitool -H {{node.meta.bmc}} chassis power cycle"
  default = true
}

provider "libvirt" {
  reboot  = "virsh reset {{node.name}}"
  default = true
}

hammer "reboot" {
  when { node { event = "down" } }
  action { reboot {} }
}
