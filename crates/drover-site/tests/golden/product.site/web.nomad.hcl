job "skipped" { this is not even valid site syntax }
