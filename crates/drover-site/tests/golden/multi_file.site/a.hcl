notifier "ops-chat" {
  webhook { url = "https://chat.example.org" }
}

alert "node-down" {
  when {
    node { status = "down" }
  }
  notify = ["ops-chat", "pager"]
}
