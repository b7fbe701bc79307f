description = <<EOT
batch operators
and their friends
EOT
acl { capabilities = ["read"] }
