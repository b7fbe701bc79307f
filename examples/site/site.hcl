# An example site folder: `drover plan examples/site`, `drover apply examples/site`.
# See docs/alerts.md for every block.

alert "task-restarting" {
  when {
    alloc { restarts = 3  within = "10m" }
  }
  severity = "warning"
  annotations = { summary = "a task restarted 3 times within 10 minutes" }
  runbook  = "runbooks/task-restarting.md"
}

alert "node-down" {
  when {
    node { status = "down" }
    for = "1m"
  }
  severity = "critical"
}

# Records what it would do; change mode to "approve" or "auto" to act.
hammer "replace-crash-looping-allocs" {
  when   { alert = "task-restarting" }
  action { restart_alloc {} }
  mode   = "dry-run"
  limits { per_hour = 5  cooldown = "30m" }
  runbook = "runbooks/task-restarting.md"
}
