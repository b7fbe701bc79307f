job { name = "*"  capabilities = ["read", "drain"] }
logs { hostgroup = "**"  capabilities = ["write"] }
variables { path = "**"  capabilities = ["submit"] }
