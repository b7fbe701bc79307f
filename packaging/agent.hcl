# /etc/drover/agent.hcl: the configuration of `drover agent`.
#
# Read with `drover agent --config /etc/drover/agent.hcl` (or a directory:
# every *.hcl file in it, in name order, later files overriding earlier
# ones). A flag or a DROVER_* environment variable overrides what this file
# says; `drover agent --print-config` shows the result and where each value
# came from. After an edit, `systemctl reload drover-agent` (SIGHUP) applies
# the labels (hostgroup, environment, owner, zone, meta: the node registers
# again with them) and log_level; every other key needs a restart, which
# the tasks survive. docs/configuration.md explains every key.

# The servers, tried in turn. (--servers, DROVER_SERVERS)
servers = ["drover-1.example.org:4747", "drover-2.example.org:4747", "drover-3.example.org:4747"]

# Node identity, allocation directories, task state, the log spool.
# (--data-dir, DROVER_DATA_DIR)
data_dir = "/var/lib/drover/agent"

# The node's name; the hostname when unset. (--name, DROVER_NAME)
# name = "batch01"

# Labels: what jobs, `drover exec --filter` and ACL policies select nodes by.
# (--hostgroup, --environment, --owner, --zone; DROVER_HOSTGROUP,
# DROVER_ENVIRONMENT, DROVER_OWNER, DROVER_ZONE)
hostgroup   = "bi/batch/gridworker"
environment = "production"
owner       = "platform-team"
zone        = "dc1"

# Free-form metadata. (--meta KEY=VALUE, repeatable; DROVER_META)
meta {
  rack = "r12"
}

# Refuse every `drover exec` on this node. (--disable-exec, DROVER_DISABLE_EXEC)
disable_exec = false

# The user of `drover exec` commands that name none; default: nobody when
# the agent runs as root. (--exec-user, DROVER_EXEC_USER)
# exec_user = "drover-exec"

# Enrolling with a secure cluster on first start (`drover node join-token
# create`). Keep it out of this file when it is readable by others:
# join_token_file or DROVER_JOIN_TOKEN.
# (--join-token, DROVER_JOIN_TOKEN; --join-token-file, DROVER_JOIN_TOKEN_FILE)
# join_token_file = "/etc/drover/agent-join-token"

# What drover logs: a level (error, warn, info, debug, trace) or tracing
# directives; the default logs drover's own events at info and its
# libraries' at warn. Applied again on SIGHUP. (--log-level, DROVER_LOG)
log_level = "warn,drover=info"

# Logs collected besides the tasks' output.
logs {
  # Follow files matching these globs, through rotations.
  # (--log-file, repeatable; DROVER_LOG_FILE, comma-separated)
  files = ["/var/log/syslog", "/var/log/messages"]
  # Receive syslog (RFC 3164 and 5424, UDP and TCP).
  # (--syslog-bind, DROVER_SYSLOG_BIND)
  # syslog_bind = "127.0.0.1:5514"
  # Read the systemd journal. (--journal, DROVER_JOURNAL)
  journal = true
  # Disk the spool of unshipped lines may use, in MiB.
  # (--log-spool-mb, DROVER_LOG_SPOOL_MB)
  spool_mb = 256
  # Send a last line without its newline once its file or syslog
  # connection was quiet this long.
  # (--log-partial-line-idle, DROVER_LOG_PARTIAL_LINE_IDLE)
  partial_line_idle = "5s"
}
