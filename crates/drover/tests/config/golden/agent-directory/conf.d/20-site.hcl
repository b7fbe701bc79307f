# Later files override earlier ones; meta entries merge.
hostgroup = "bi/batch"
meta {
  rack = "r12"
}
