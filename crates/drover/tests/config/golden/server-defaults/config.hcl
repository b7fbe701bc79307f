# Nothing but the data directory: every other value is a default.
data_dir = "/var/lib/drover/server"
