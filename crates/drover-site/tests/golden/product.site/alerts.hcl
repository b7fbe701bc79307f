# The product brief's example alert. The brief writes this `when` on one
# line; the test `product_md_one_line_when_parses` in tests/golden.rs
# checks that form parses too.
alert "tmp-full" {
  when {
    metric = "disk_used_percent{mount=\"/tmp\"}"
    above  = 95
    for    = "5m"
  }
  severity = "warning"
  notify   = ["ops-chat"]
  runbook  = "https://ops.example.org/runbooks/tmp-full"
}
