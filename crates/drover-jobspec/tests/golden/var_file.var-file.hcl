# values for production
version  = "2.1.0"
replicas = 4
