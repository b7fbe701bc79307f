data_dir = "/var/lib/drover/server"
log_level = "loud"
