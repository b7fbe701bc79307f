node { hostgroup = "bi/**" }
operator {}
