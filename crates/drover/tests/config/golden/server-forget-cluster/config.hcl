data_dir = "/var/lib/drover/server"
forget_cluster = true
