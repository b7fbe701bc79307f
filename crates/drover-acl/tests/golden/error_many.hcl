description = "mixed"
nde { hostgroup = "x" capabilities = ["read"] }
job { name = "*" capabilities = ["drain"] }
site { capabilities = [] }
variables { path = "a/[b" capabilities = ["read", "read"] }
