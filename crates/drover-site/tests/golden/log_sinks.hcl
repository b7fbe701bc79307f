# Copies of every indexed line for the engines a site already runs.
log_sink "loki" {
  url    = "http://loki.example.org:3100"
  labels = ["node", "job", "level"]
}

log_sink "loki-json" {
  type       = "loki"
  url        = "https://logs.example.org"
  format     = "json"
  tenant     = "ops"
  headers    = { Authorization = "Bearer xyz" }
  batch_size = 500
  batch_wait = "250ms"
}

log_sink "opensearch" {
  url         = "https://search.example.org:9200"
  index       = "drover-%Y.%m.%d"
  buffer      = 20000
  max_backoff = "30s"
}

log_sink "archive" {
  type = "elasticsearch"
  url  = "http://es:9200"
}
