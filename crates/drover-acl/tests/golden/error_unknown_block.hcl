nodes { hostgroup = "bi/**" capabilities = ["read"] }
jobs { name = "*" capabilities = ["read"] }
storage { capabilities = ["read"] }
