variable "x" { default = 1 }
jbo "typo" {}
