from_file = "var file"
from_cli  = "var file"
racks     = ["r1", "r2"]
replicas  = 3
