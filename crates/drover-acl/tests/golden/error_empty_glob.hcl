node { hostgroup = ""  capabilities = ["read"] }
job { name = ""  capabilities = ["read"] }
