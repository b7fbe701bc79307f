servers     = ["10.0.0.11:4747"]
data_dir    = "/var/lib/drover/agent"
hostgroup   = "base"
environment = "production"
meta = { rack = "r1", row = "a" }
