site { hostgroup = "bi/**"  capabilities = ["read"] }
operator { name = "*"  capabilities = ["read"] }
acl { path = "x"  capabilities = ["read"] }
