node { hostgroup = "bi/**  capabilities = ["read"] }
