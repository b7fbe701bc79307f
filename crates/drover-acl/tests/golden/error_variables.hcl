variable "group" {
  default = "bi"
}
node { hostgroup = "${var.group}/**"  capabilities = ["read"] }
