//! The bodies of the machine workflow routes (`/v1/workflows`,
//! docs/machines.md). A workflow itself travels as
//! [`drover_types::workflow::Workflow`].

use serde::{Deserialize, Serialize};

use drover_types::workflow::{FailureLimit, MachineOperation, Maintenance};

/// `POST /v1/workflows`: create, reboot, rebuild, delete or maintain
/// machines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRequest {
    /// What to do.
    pub operation: MachineOperation,
    /// Node names or ids (brace ranges already expanded); for `create`,
    /// the names of the new machines.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Or (and) the nodes this filter matches (not for `create`).
    #[serde(default)]
    pub filter: Option<String>,
    /// The provider; none: each node's (`provider` meta key) or the default.
    #[serde(default)]
    pub provider: Option<String>,
    /// `create`: the labels the new agents register with (also what the
    /// template's `{{node.hostgroup}}`, … placeholders render).
    #[serde(default)]
    pub labels: drover_types::NodeLabels,
    /// At most this many steps start per minute.
    #[serde(default)]
    pub rate_per_minute: Option<u32>,
    /// At most this many nodes at once (default 1).
    #[serde(default)]
    pub parallel: Option<u32>,
    /// Stop when more nodes than this fail (default 1): a number (`2`) or a
    /// percentage of the nodes selected (`"10%"`, rounded down).
    #[serde(default)]
    pub max_failures: Option<FailureLimit>,
    /// Do not drain before a rebuild or delete.
    #[serde(default)]
    pub no_drain: bool,
    /// How long a node may take to drain and to come back (`10m`, the
    /// default).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Only tell which nodes and commands it would run.
    #[serde(default)]
    pub dry_run: bool,
    /// `maintain`: the commands run on each node, and how it reboots.
    #[serde(default)]
    pub maintenance: Maintenance,
}

/// The answer to `POST /v1/workflows`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowStarted {
    /// The workflow (every step pending); with `dry_run`, not started.
    pub workflow: drover_types::workflow::Workflow,
    /// Each node with the provider command it would run (rendered now;
    /// the real one is rendered when its step starts).
    pub commands: Vec<(String, String)>,
}

/// The answer to `GET /v1/node/{node}/console`: the provider's `console`
/// command's output, now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConsole {
    /// The node's name.
    pub node: String,
    /// The command run, rendered.
    pub command: String,
    /// What it printed (stdout, then stderr; capped).
    pub output: String,
}
