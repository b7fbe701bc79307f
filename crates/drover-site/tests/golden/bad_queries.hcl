alert "hello-errors" {
  when {
    log { query = "((hello"  within = "5m" }
  }
}

hammer "on-panic" {
  when   { log { query = "level:error AND" } }
  action { drain {} }
  mode   = "dry-run"
}
