namespace "default" {
  policy = "read"
}
agent { policy = "read" }
node { hostgroup = "**"  policy = "write" }
