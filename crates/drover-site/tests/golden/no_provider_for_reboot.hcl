hammer "reboot-on-kernel-panic" {
  when { log { source = "console"  match = "Kernel panic" } }
  action { reboot {} }
  mode = "auto"
}
