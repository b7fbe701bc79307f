description = "batch operators"          # optional
node      { hostgroup = "bi/batch/**"  capabilities = ["read", "update", "drain", "exec"] }
job       { name = "*"                 capabilities = ["read", "submit", "stop"] }
logs      { hostgroup = "bi/batch/**"  capabilities = ["read"] }
site      { capabilities = ["read"] }
variables { path = "bi/*"  capabilities = ["read", "write"] }
operator  { capabilities = ["read"] }
acl       { capabilities = ["read"] }
