# The Belle II DAQ pattern: one slow-control daemon on every machine of the
# belle2/daq host group, upgraded by changing one variable:
#
#   drover job run examples/belle2.nomad.hcl -var daq_slc_version=3.2.2
#
# The real daemon is /cvmfs/belle.cern.ch/daq_slc/<version>/bin/nsmd2 with a
# tcp check on port 8120; this copy runs commands every Debian machine has.
variable "daq_slc_version" {
  type        = string
  default     = "3.2.1"
  description = "Version of the DAQ slow-control software"
}

job "nsmd2" {
  type = "system" # one on every matching node

  constraint {
    attribute = "${node.hostgroup}"
    operator  = "glob"
    value     = "belle2/daq/**"
  }

  group "nsmd2" {
    task "nsmd2" {
      driver = "exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "echo \"nsmd2 ${var.daq_slc_version} starting on ${node.unique.name}\"; exec /bin/sleep infinity"]
      }

      env {
        DAQ_SLC_VERSION = var.daq_slc_version
      }

      restart {
        attempts = 10
        interval = "30m"
        delay    = "15s"
        mode     = "delay"
      }

      service {
        check {
          type     = "script"
          command  = "/bin/sh"
          args     = ["-c", "test -d /proc/self"]
          interval = "10s"
          timeout  = "2s"
        }
      }
    }
  }
}
