log_sink "loki" {
  labels = ["node", "jobb"]
}

log_sink "search" {
  url = "search.example.org:9200"
}

log_sink "opensearch" {
  url    = "http://search:9200"
  index  = "Drover-%Y.%j"
  labels = ["node"]
}

log_sink "loki2" {
  type   = "lokki"
  url    = "http://loki:3100"
  format = "snappy"
}
