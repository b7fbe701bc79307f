site = { capabilities = ["read"] }
