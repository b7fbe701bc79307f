servers     = ["10.0.0.11:4747"]
data_dir    = "/var/lib/drover/agent"
hostgroup   = "from-file"
environment = "from-file"
owner       = "from-file"
meta = { rack = "r1", row = "a" }
