# Every block and attribute of the site schema, with non-default values.
provider "ipmi" {
  default          = true
  reboot           = "ipmitool -H {{node.meta.bmc}} -U admin chassis power cycle"
  console          = "ipmitool -H {{ node.meta.bmc }} sol activate"
  create           = "foreman-create --group {{node.hostgroup}} {{node.name}}"
  timeout          = "2m"
  console_interval = "1m"
}

provider "libvirt" {
  rebuild = "virt-rebuild {{node.name}} --zone {{node.zone}}"
  delete  = "virsh destroy {{node.id}}"
}

notifier "chat" {
  webhook {
    url     = "https://chat.example.org/hooks/ops"
    body    = "{\"text\": \"{{alert.status}} {{alert.name}} on {{alert.labels.node}}: {{alert.annotations.summary}} {{alert.runbook}}\"}"
    headers = { Authorization = "Bearer x" }
  }
  retry {
    attempts = 4
    backoff  = "5s"
  }
}

notifier "mail" {
  email {
    smtp    = "localhost:2525"
    from    = "drover@example.org"
    to      = ["ops@example.org", "oncall@example.org"]
    subject = "[{{alert.severity}}] {{alert.name}}"
  }
}

notifier "am" {
  alertmanager { url = "http://alertmanager.example.org:9093" }
}

alert "node-down" {
  when {
    node { status = "down" }
    for = "2m"
  }
  severity        = "critical"
  labels          = { team = "ops" }
  annotations     = { summary = "node is down" }
  notify          = ["chat", "mail"]
  runbook         = "runbooks/kernel-panic.md"
  repeat_interval = "4h"
}

alert "heartbeat-late" {
  when {
    node { heartbeat_age = "30s" }
  }
}

alert "drain-stuck" {
  when {
    node { drain_stuck = "1h" }
  }
  severity = "info"
}

alert "alloc-failed" {
  when {
    alloc {
      job    = "nsmd2"
      status = "failed"
    }
  }
  notify = ["am"]
}

alert "restart-loop" {
  when {
    alloc {
      restarts = 5
      within   = "10m"
    }
  }
}

alert "check-failing" {
  when {
    alloc { check = "failing" }
    for = "1m"
  }
}

alert "oom" {
  when {
    log {
      source   = "journal"
      match    = "Out of memory"
      at_least = 3
      within   = "10m"
      by       = "job"
    }
  }
}

alert "disk-full" {
  when {
    metric {
      name   = "disk_used_percent"
      labels = { mount = "/tmp" }
      above  = 95.5
    }
    for = "5m"
  }
}

alert "memory-low" {
  when {
    metric = "memory_free_bytes"
    below  = 1000000
  }
}

alert "external" {
  when {
    alertmanager { matchers = ["alertname=~MySQL.*", "severity!=info"] }
  }
}

hammer "restart-on-check" {
  when { alert = "check-failing" }
  action { restart_alloc {} }
  mode = "auto"
}

hammer "restart-daq" {
  when { log { match = "NSM2 lost" } }
  action { restart_job { job = "nsmd2" } }
  mode = "approve"
}

hammer "drain-on-down" {
  when { node { event = "down" } }
  action { drain { deadline = "30m" } }
  mode = "dry-run"
  limits {
    per_hour          = 2
    concurrent        = 1
    cooldown          = "1h"
    max_attempts      = 2
    attempts_window   = "12h"
    fleet_max_percent = 5
    fleet_window      = "30m"
  }
  notify = ["chat"]
}

hammer "rebuild-broken" {
  when { alertmanager { matchers = { alertname = "DiskBroken" } } }
  action { rebuild { provider = "libvirt" } }
  limits { max_share = 0.25 }
}

hammer "clean-tmp" {
  when { alert = "disk-full" }
  action {
    command {
      on      = "node"
      command = "find /tmp -mtime +7 -delete # {{node.name}}"
      timeout = "5m"
    }
  }
}

hammer "page" {
  when { alert = "node-down" }
  action { webhook { url = "https://pager.example.org/trigger" } }
}
