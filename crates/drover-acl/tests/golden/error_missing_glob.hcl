node { capabilities = ["read"] }
job { capabilities = ["read"] }
logs { capabilities = ["read"] }
variables { capabilities = ["read"] }
