node {
  hostgrup     = "bi/**"
  capabilities = ["read"]
}
job { name = "*"  capabilites = ["read"] }
