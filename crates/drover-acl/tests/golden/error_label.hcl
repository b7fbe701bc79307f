node "bi/**" { capabilities = ["read"] }
