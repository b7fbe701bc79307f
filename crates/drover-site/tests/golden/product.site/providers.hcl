# The product brief's example provider: how to act on the machines beneath agents.
provider "openstack" {
  reboot  = "openstack server reboot --hard {{node.name}}"
  console = "openstack console log show {{node.name}}"
  rebuild = "ai-rebuild-vm --cc7 {{node.name}}"
  delete  = "ai-kill {{node.name}}"
}
