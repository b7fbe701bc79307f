data_dir = "/var/lib/drover/agent"
logs {
  spool_mb = "lots"
}
