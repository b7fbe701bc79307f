node { hostgroup = "${node.hostgroup}/**"  capabilities = ["read"] }
