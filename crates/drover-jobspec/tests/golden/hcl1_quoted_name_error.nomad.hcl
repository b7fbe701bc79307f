job "hcl1" {
  meta {
    "app.version" = "2"
  }
}
