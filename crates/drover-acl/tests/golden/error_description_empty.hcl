description = "  "
