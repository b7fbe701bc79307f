data_dir = "/var/lib/drover/server"
bootstrap_expect = "three"
join = "10.0.0.12:4747"
insecure = "maybe"
min_free_disk_mb = -1
