variable "chat_url" { default = "https://chat.example.org/hooks/ops" }

notifier "ops-chat" {
  webhook { url = var.chat_url }
}

alert "node-down" {
  when {
    node { status = "down" }
  }
  notify = ["ops-chat"]
  runbook = "runbooks/kernel-panic.md"
}
