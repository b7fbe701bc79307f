alert "broken" {
  when { node { status = "down }
}
