job "hollow" {
  type = "batch"
}
