job { hostgroup = "bi/**"  capabilities = ["read"] }
variables { name = "x"  capabilities = ["read"] }
logs { hostgroup = "**"  path = "x"  capabilities = ["read"] }
