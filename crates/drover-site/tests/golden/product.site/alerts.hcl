# PRODUCT.md writes this `when` on one line; see the ignored test
# `product_md_one_line_when_parses` in tests/golden.rs for why it is
# multi-line here.
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
