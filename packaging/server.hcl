# /etc/drover/server.hcl: the configuration of `drover server`.
#
# Read with `drover server --config /etc/drover/server.hcl` (or a directory:
# every *.hcl file in it, in name order, later files overriding earlier
# ones). A flag or a DROVER_* environment variable overrides what this file
# says; `drover server --print-config` shows the result and where each value
# came from. After an edit, `systemctl reload drover-server` (SIGHUP) applies
# log_level; every other key needs a restart. docs/configuration.md explains
# every key.

# Where the Raft log, snapshots, the log index and the server's certificates
# live. (--data-dir, DROVER_DATA_DIR)
data_dir = "/var/lib/drover/server"

# The one port of the server: the API, agent sessions and the other servers'
# traffic. (--bind, DROVER_BIND; default "127.0.0.1:4747")
bind = "0.0.0.0:4747"

# The address others use to reach this server when it differs from bind
# (behind NAT, or bind = "0.0.0.0:4747"). (--advertise, DROVER_ADVERTISE)
# advertise = "10.0.0.11:4747"

# A new cluster of three: every server gets the same bootstrap_expect and
# the addresses of the others. To join a running cluster, give join alone.
# (--bootstrap-expect, DROVER_BOOTSTRAP_EXPECT; --join, DROVER_JOIN)
# bootstrap_expect = 3
# join             = ["10.0.0.12:4747", "10.0.0.13:4747"]

# Refuse `drover exec` through this server. (--disable-exec, DROVER_DISABLE_EXEC)
disable_exec = false

# `drover server health` warns when the data directory's file system has
# less free space than this, in MiB; 0 never warns.
# (--min-free-disk-mb, DROVER_MIN_FREE_DISK_MB)
min_free_disk_mb = 1024

# What drover logs: a level (error, warn, info, debug, trace) or tracing
# directives; the default logs drover's own events at info and its
# libraries' at warn. Applied again on SIGHUP. (--log-level, DROVER_LOG)
log_level = "warn,drover=info"

# Plain HTTP without certificates or ACLs. Only for a trusted network.
# (--insecure, DROVER_INSECURE)
insecure = false

# Joining a secure cluster for the first time: a server join token
# (`drover server join-token create`). Keep it out of this file when it is
# readable by others: join_token_file or DROVER_JOIN_TOKEN.
# (--join-token, DROVER_JOIN_TOKEN; --join-token-file, DROVER_JOIN_TOKEN_FILE)
# join_token      = "…"
# join_token_file = "/etc/drover/server-join-token"

# Forget a node that has been down this long (audited; protected nodes are
# kept). (--node-gc-after, DROVER_NODE_GC_AFTER)
node_gc_after = "7d"

# forget_cluster (--forget-cluster) is a one-time recovery step and cannot be
# set in a file.

# Agents heartbeat every interval; a node silent for ttl is marked down.
heartbeat {
  # (--heartbeat-interval, DROVER_HEARTBEAT_INTERVAL)
  interval = "4s"
  # Longer than interval. (--heartbeat-ttl, DROVER_HEARTBEAT_TTL)
  ttl = "8s"
}

# The log index of the fleet.
logs {
  # Delete indexed lines older than this (whole hourly partitions).
  # (--log-retention, DROVER_LOG_RETENTION; default: keep)
  retention = "30d"
  # Delete the oldest partitions while the index is bigger than this, in MiB.
  # (--log-max-mb, DROVER_LOG_MAX_MB; default: no limit)
  max_mb = 51200
  # A line's own timestamp is its event time only within this of when it
  # was received (docs/logs.md). (--log-max-skew, DROVER_LOG_MAX_SKEW)
  max_skew = "15m"
  # Receive syslog (UDP and TCP) for machines without an agent.
  # (--syslog-bind, DROVER_SYSLOG_BIND)
  # syslog_bind = "0.0.0.0:514"
}

# Certificates of a secure cluster (docs/security.md).
tls {
  # Use this CA instead of making one; the same on every server of a
  # bootstrap_expect cluster. Both or neither.
  # (--tls-ca-cert, DROVER_TLS_CA_CERT; --tls-ca-key, DROVER_TLS_CA_KEY)
  # ca_cert = "/etc/drover/ca.pem"
  # ca_key  = "/etc/drover/ca-key.pem"
  # How long server and node certificates are valid; renewed two thirds
  # into it. (--tls-cert-validity, DROVER_TLS_CERT_VALIDITY)
  cert_validity = "30d"
}

# Who did what. (--audit-retention, DROVER_AUDIT_RETENTION)
audit {
  retention = "90d"
}
