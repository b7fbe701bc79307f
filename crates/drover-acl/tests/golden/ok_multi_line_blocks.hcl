# Rules keep file order; one scope may have several.
node {
  hostgroup    = "belle2/**"
  capabilities = ["read", "exec-as-root"]
}

site {
  capabilities = [
    "read",
    "hammer-approve",
  ]
}

node {
  hostgroup    = "*"
  capabilities = ["protect"]
}
