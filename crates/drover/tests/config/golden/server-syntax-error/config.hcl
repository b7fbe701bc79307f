data_dir = "/var/lib/drover/server"
bind = "0.0.0.0:4747
