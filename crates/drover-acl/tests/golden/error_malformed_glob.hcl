node { hostgroup = "bi/[batch"  capabilities = ["read"] }
job { name = "web-\\"  capabilities = ["read"] }
variables { path = "a/[z-a]"  capabilities = ["read"] }
