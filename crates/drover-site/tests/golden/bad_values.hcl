notifier "two-kinds" {
  webhook { url = "ftp://x" }
  alertmanager { url = "http://am:9093" }
}

notifier "mail" {
  email {
    smtp = "no-port"
    to   = []
  }
  retry { attempts = 0 }
}

notifier "none" {}

alert "no-when" {
  severity = "warning"
}

alert "two-conditions" {
  when {
    node { status = "down" }
    alloc { status = "failed" }
    for = "soon"
  }
}

alert "bad-metric" {
  when {
    metric = "disk used{mount=\"/tmp\"}"
    above  = 95
    below  = 5
  }
}

alert "no-threshold" {
  when { metric = "up" }
}

alert "bad-log" {
  when {
    log {
      source   = "kernel"
      at_least = 0
      by       = "host"
    }
  }
}

alert "bad-matchers" {
  when {
    alertmanager { matchers = ["severity=~(", "nonsense"] }
  }
}

hammer "no-action" {
  when { node { event = "exploded" } }
  limits {
    fleet_max_percent = 150
    cooldown          = "-1m"
  }
}

hammer "two-actions" {
  when {
    alert = "bad-log"
    log { match = "x" }
  }
  action {
    restart_alloc {}
    drain {}
  }
}

hammer "bad-command" {
  when { log { query = "level:error" } }
  action {
    command {
      on      = "everywhere"
      command = "echo {{node.name"
      timeout = "0s"
    }
  }
  limits {
    fleet_max_percent = 10
    max_share         = 0.1
  }
}

hammer "BAD NAME" {
  when { alert = "bad-log" }
  action { restart_alloc {} }
  runbook = "see the wiki"
}
