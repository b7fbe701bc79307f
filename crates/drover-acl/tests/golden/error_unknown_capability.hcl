node { hostgroup = "**"  capabilities = ["raed", "Drain", "exec_as_root"] }
acl { capabilities = ["admin"] }
