node { hostgroup = "bi/**"  capabilities = "read" }
job { name = ["a"]  capabilities = ["read"] }
