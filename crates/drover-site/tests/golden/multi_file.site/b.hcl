notifier "ops-chat" {
  alertmanager { url = "http://am:9093" }
}

hammer "h" {
  when { alert = "node-dwn" }
  action { restart_alloc {} }
  notify = ["ops-chat"]
}
