hammer "reboot-on-kernel-panic" {
  when   { log { source = "console"  match = "Kernel panic" } }
  action { reboot {} }
  mode   = "auto"
  limits { per_hour = 5  concurrent = 2  cooldown = "30m" }
  runbook = "https://ops.example.org/runbooks/kernel-panic"
}
