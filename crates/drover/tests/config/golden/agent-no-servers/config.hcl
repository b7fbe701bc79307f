data_dir = "/var/lib/drover/agent"
