job "web" {
  group "g" {}
}
