variable "daq_slc_version" { default = "3.2.1" }

job "nsmd2" {
  type = "system"                              # one on every matching node
  constraint {
    attribute = "${node.hostgroup}"
    operator  = "glob"
    value     = "belle2/daq/**"
  }
  group "nsmd2" {
    task "nsmd2" {
      driver = "exec"
      config {
        command = "/cvmfs/belle.cern.ch/daq_slc/${var.daq_slc_version}/bin/nsmd2"
        args    = ["-f"]
      }
      restart { attempts = 10  interval = "30m"  delay = "15s"  mode = "delay" }
      service { check { type = "tcp"  port = 8120  interval = "10s"  timeout = "2s" } }
    }
  }
}
