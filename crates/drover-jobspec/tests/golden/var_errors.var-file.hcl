fine = "from file"
unknown_in_file = 1
block { x = 1 }
