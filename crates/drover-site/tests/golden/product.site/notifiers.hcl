notifier "ops-chat" {
  webhook {
    url     = "https://chat.example.org/hooks/ops"
    headers = { "X-Team" = "ops" }
  }
}

notifier "ops-mail" {
  email {
    smtp = "mail.example.org:25"
    from = "drover@example.org"
    to   = ["ops@example.org"]
  }
  retry { attempts = 5  backoff = "30s" }
}
