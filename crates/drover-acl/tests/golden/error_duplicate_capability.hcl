node { hostgroup = "**"  capabilities = ["read", "drain", "read"] }
