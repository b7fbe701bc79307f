//! The site's objects as data: providers, notifiers, alert rules, hammers.
//!
//! These are what the HCL files say, with every default written in, so the
//! servers never guess. They serialise to JSON for `drover plan` output, the
//! golden tests and (later) Raft entries; field names follow the HCL names.

use std::collections::BTreeMap;

use drover_types::DurationSpec;
use serde::{Deserialize, Serialize};

use crate::matcher::{Labels, Matcher, Selector};
use crate::template::Template;

/// Every object of a site, by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Site {
    /// `provider "NAME" { … }`.
    pub providers: BTreeMap<String, Provider>,
    /// `notifier "NAME" { … }`.
    pub notifiers: BTreeMap<String, Notifier>,
    /// `alert "NAME" { … }`.
    pub alerts: BTreeMap<String, AlertRule>,
    /// `hammer "NAME" { … }`.
    pub hammers: BTreeMap<String, Hammer>,
    /// `log_sink "NAME" { … }`: engines every server copies the lines it
    /// indexes to (left out of the JSON when there are none, so sites
    /// stored before sinks existed read the same).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub log_sinks: BTreeMap<String, LogSink>,
}

// ----- log sinks -----

/// Another log engine every server copies the lines it indexes to, after
/// they are durable in its own index (docs/logs.md, "Sinks").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSink {
    /// The label.
    pub name: String,
    /// The engine and what is particular to it.
    pub kind: LogSinkKind,
    /// The engine's base URL (`http://loki:3100`, `https://search:9200`).
    pub url: String,
    /// Extra HTTP headers of every request (`Authorization`, …).
    pub headers: BTreeMap<String, String>,
    /// Lines per request, at most.
    pub batch_size: u32,
    /// How long a partial batch waits for more lines before it is sent.
    pub batch_wait: DurationSpec,
    /// Lines held for the engine while it is slow or down, at most;
    /// beyond that the sink reads them again from the server's index once
    /// it caught up.
    pub buffer: u32,
    /// The longest wait between two attempts of a failed request (the
    /// wait doubles from 500ms up to this).
    pub max_backoff: DurationSpec,
}

/// The engine of a log sink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum LogSinkKind {
    /// Grafana Loki's push API.
    Loki {
        /// The record fields that become stream labels, in order.
        labels: Vec<String>,
        /// `protobuf` (snappy-compressed, as promtail sends) or `json`.
        format: LokiFormat,
        /// `X-Scope-OrgID`, for a multi-tenant Loki.
        tenant: Option<String>,
    },
    /// OpenSearch's (or Elasticsearch's) `_bulk` API.
    Opensearch {
        /// The index of a line, with `%Y`, `%m`, `%d`, `%H` of its event
        /// time (UTC) replaced.
        index: String,
    },
}

/// The body of a Loki push request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LokiFormat {
    /// `application/x-protobuf`, snappy block format.
    Protobuf,
    /// `application/json`.
    Json,
}

/// The record fields a Loki sink may use as labels.
pub const LOKI_LABEL_FIELDS: [&str; 10] =
    ["node", "hostgroup", "environment", "job", "group", "task", "source", "stream", "level", "origin"];

/// The labels of a Loki sink that names none.
pub const LOKI_DEFAULT_LABELS: [&str; 4] = ["node", "job", "source", "level"];

// ----- providers -----

/// How to act on the machine beneath an agent: one shell command template
/// per operation. An operation without a template is not available for
/// nodes of this provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// The label.
    pub name: String,
    /// Whether nodes without a `provider` meta key use this provider. When
    /// a site has one provider, it is the default without saying so.
    pub default: bool,
    /// Creates a machine.
    pub create: Option<Template>,
    /// Power-cycles a machine.
    pub reboot: Option<Template>,
    /// Reinstalls a machine.
    pub rebuild: Option<Template>,
    /// Deletes a machine.
    pub delete: Option<Template>,
    /// Prints the machine's console log (read as the `console` log source).
    pub console: Option<Template>,
    /// Powers a machine on (IPMI-style `chassis power on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_on: Option<Template>,
    /// Powers a machine off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_off: Option<Template>,
    /// How long one command may run before it is killed.
    pub timeout: DurationSpec,
    /// How often the console log is read.
    pub console_interval: DurationSpec,
}

/// The operations a provider may define.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderOperation {
    /// `create`.
    Create,
    /// `reboot`.
    Reboot,
    /// `rebuild`.
    Rebuild,
    /// `delete`.
    Delete,
    /// `console`.
    Console,
    /// `power_on`.
    PowerOn,
    /// `power_off`.
    PowerOff,
}

impl ProviderOperation {
    /// Every operation, in HCL order.
    pub const ALL: [ProviderOperation; 7] = [
        ProviderOperation::Create,
        ProviderOperation::Reboot,
        ProviderOperation::Rebuild,
        ProviderOperation::Delete,
        ProviderOperation::Console,
        ProviderOperation::PowerOn,
        ProviderOperation::PowerOff,
    ];

    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderOperation::Create => "create",
            ProviderOperation::Reboot => "reboot",
            ProviderOperation::Rebuild => "rebuild",
            ProviderOperation::Delete => "delete",
            ProviderOperation::Console => "console",
            ProviderOperation::PowerOn => "power_on",
            ProviderOperation::PowerOff => "power_off",
        }
    }
}

impl Provider {
    /// The template of an operation, if defined.
    pub fn command(&self, operation: ProviderOperation) -> Option<&Template> {
        match operation {
            ProviderOperation::Create => self.create.as_ref(),
            ProviderOperation::Reboot => self.reboot.as_ref(),
            ProviderOperation::Rebuild => self.rebuild.as_ref(),
            ProviderOperation::Delete => self.delete.as_ref(),
            ProviderOperation::Console => self.console.as_ref(),
            ProviderOperation::PowerOn => self.power_on.as_ref(),
            ProviderOperation::PowerOff => self.power_off.as_ref(),
        }
    }
}

// ----- notifiers -----

/// Where alerts and escalations go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notifier {
    /// The label.
    pub name: String,
    /// The channel.
    pub kind: NotifierKind,
    /// How failed deliveries are retried.
    pub retry: RetryPolicy,
}

/// A notifier's channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifierKind {
    /// An HTTP POST.
    Webhook {
        /// The URL (http or https).
        url: String,
        /// The body; `None` sends drover's JSON document of the alert.
        body: Option<Template>,
        /// Extra request headers.
        headers: BTreeMap<String, String>,
    },
    /// An e-mail through an SMTP relay.
    Email {
        /// `host:port` of the relay.
        smtp: String,
        /// The sender address.
        from: String,
        /// The recipients.
        to: Vec<String>,
        /// The subject line.
        subject: Template,
    },
    /// An existing Alertmanager (its `/api/v2/alerts`).
    Alertmanager {
        /// The Alertmanager's base URL.
        url: String,
    },
}

/// The subject of e-mails whose notifier does not give one.
pub const DEFAULT_EMAIL_SUBJECT: &str = "[drover] {{alert.status}}: {{alert.name}}";

/// Retries of a failed delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Deliveries tried in all, the first included.
    pub attempts: u32,
    /// The wait before the first retry, doubled after each failure.
    pub backoff: DurationSpec,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 3, backoff: DurationSpec::from_secs(10) }
    }
}

// ----- alert rules -----

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record.
    Info,
    /// Look at it today.
    #[default]
    Warning,
    /// Look at it now.
    Critical,
}

impl Severity {
    /// The name used in labels and files.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// `alert "NAME" { … }`: a condition held for a duration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    /// The label; the `alertname` label of its alerts.
    pub name: String,
    /// What is watched.
    pub condition: Condition,
    /// How long the condition must hold before the alert fires (`for` in
    /// the `when` block; zero fires at once).
    #[serde(rename = "for")]
    pub hold: DurationSpec,
    /// How urgent.
    pub severity: Severity,
    /// Labels added to every alert of the rule.
    pub labels: Labels,
    /// Texts added to every notification (`summary`, `description`, …).
    pub annotations: BTreeMap<String, String>,
    /// Notifier names.
    pub notify: Vec<String>,
    /// Where a human reads what to do.
    pub runbook: Option<Runbook>,
    /// Re-notify a still-firing, unacknowledged alert this often; `None`
    /// notifies once per firing episode.
    pub repeat_interval: Option<DurationSpec>,
}

/// What an alert rule watches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// A node's state.
    Node(NodeCondition),
    /// An allocation's state.
    Alloc(AllocCondition),
    /// Log lines counted over a window.
    Log(LogCondition),
    /// A metric against a threshold.
    Metric(MetricCondition),
    /// Alerts received from an external Alertmanager webhook.
    Alertmanager {
        /// Which received alerts count.
        matchers: Vec<Matcher>,
    },
}

/// `when { node { … } }`: exactly one of the checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeCondition {
    /// The node has this status (`down`, `disconnected`, `draining`,
    /// `ineligible`, …), as the site file names it; read into a typed
    /// [`NodeState`](crate::conditions::NodeState) when evaluated.
    Status(String),
    /// No heartbeat for longer than this.
    HeartbeatAge(DurationSpec),
    /// A drain has been running for longer than this.
    DrainStuck(DurationSpec),
}

/// `when { alloc { … } }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocCondition {
    /// Only allocations of this job (all when `None`).
    pub job: Option<String>,
    /// The check.
    pub check: AllocCheck,
}

/// The checks of an `alloc` condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllocCheck {
    /// The allocation has this client status (`failed`, `lost`, …), as
    /// the site file names it ([`alloc_status_named`](crate::conditions::alloc_status_named)).
    Status(String),
    /// At least `count` task restarts within `within`.
    Restarts {
        /// Restarts counted.
        count: u32,
        /// The window.
        within: DurationSpec,
    },
    /// A health check is in this state (`failing`;
    /// [`check_health_named`](crate::conditions::check_health_named)).
    Check(String),
}

/// How log matches are grouped into alerts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One alert per node.
    #[default]
    Node,
    /// One alert per job.
    Job,
}

/// `when { log { … } }`: at least `at_least` matching lines within `within`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCondition {
    /// A log search query (the `drover logs search` language).
    pub query: Option<String>,
    /// Only lines from this source (`task`, `file`, `journal`, `syslog`,
    /// `console`).
    pub source: Option<String>,
    /// Only lines containing this text.
    #[serde(rename = "match")]
    pub matches: Option<String>,
    /// Lines needed.
    pub at_least: u32,
    /// The window lines are counted over.
    pub within: DurationSpec,
    /// The grouping of matches into alerts.
    pub by: GroupBy,
}

/// Which side of the threshold fires.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Threshold {
    /// The value is greater than this.
    Above(f64),
    /// The value is less than this.
    Below(f64),
}

impl Threshold {
    /// Whether `value` is on the firing side.
    pub fn is_crossed_by(self, value: f64) -> bool {
        match self {
            Threshold::Above(limit) => value > limit,
            Threshold::Below(limit) => value < limit,
        }
    }
}

/// `when { metric { … } }` or `when { metric = "sel" above = N }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricCondition {
    /// The metric and its label matchers.
    pub selector: Selector,
    /// The threshold.
    pub threshold: Threshold,
}

/// Where a human reads what to do: a URL, or a Markdown file of the site
/// folder (path relative to the folder).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runbook {
    /// An `http://` or `https://` address.
    Url(String),
    /// A `.md` file relative to the site folder.
    File(String),
}

impl Runbook {
    /// The runbook as written.
    pub fn as_str(&self) -> &str {
        match self {
            Runbook::Url(text) | Runbook::File(text) => text,
        }
    }
}

// ----- hammers -----

/// `hammer "NAME" { … }`: an automated reaction with safety limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hammer {
    /// The label.
    pub name: String,
    /// What sets it off.
    pub trigger: HammerTrigger,
    /// What it does.
    pub action: Action,
    /// Whether it acts alone, asks first, or only says what it would do.
    pub mode: Mode,
    /// The safety limits.
    pub limits: Limits,
    /// Where a human reads about it.
    pub runbook: Option<Runbook>,
    /// Notifier names for escalations and, in `approve` mode, requests.
    pub notify: Vec<String>,
}

/// What sets a hammer off (`when { … }`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HammerTrigger {
    /// An alert rule of the site starts firing.
    Alert(String),
    /// A log line.
    Log {
        /// Only lines from this source (`console`, `journal`, …).
        source: Option<String>,
        /// Only lines containing this text.
        #[serde(rename = "match")]
        matches: Option<String>,
        /// A log search query.
        query: Option<String>,
    },
    /// A node event.
    Node(NodeEvent),
    /// An alert received from an external Alertmanager.
    Alertmanager {
        /// Which received alerts count.
        matchers: Vec<Matcher>,
    },
}

/// Node events a hammer can react to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeEvent {
    /// Missed its heartbeat deadline.
    Down,
    /// Heartbeats again.
    Up,
    /// Registered for the first time.
    Registered,
    /// Disconnected (waiting for `lost_after`).
    Disconnected,
    /// A drain finished.
    Drained,
}

impl NodeEvent {
    /// Every event name.
    pub const NAMES: [&'static str; 5] = ["down", "up", "registered", "disconnected", "drained"];

    /// The event's name.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeEvent::Down => "down",
            NodeEvent::Up => "up",
            NodeEvent::Registered => "registered",
            NodeEvent::Disconnected => "disconnected",
            NodeEvent::Drained => "drained",
        }
    }

    /// Reads an event name.
    pub fn from_name(name: &str) -> Option<NodeEvent> {
        match name {
            "down" => Some(NodeEvent::Down),
            "up" => Some(NodeEvent::Up),
            "registered" => Some(NodeEvent::Registered),
            "disconnected" => Some(NodeEvent::Disconnected),
            "drained" => Some(NodeEvent::Drained),
            _ => None,
        }
    }
}

/// Where a hammer command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandTarget {
    /// On the affected node, by its agent.
    Node,
    /// On the leader server.
    Server,
}

/// What a hammer does (`action { … }`, exactly one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Restarts the allocation the trigger is about.
    RestartAlloc,
    /// Restarts every allocation of a job (the trigger's job when `None`).
    RestartJob {
        /// The job.
        job: Option<String>,
    },
    /// Drains the node.
    Drain {
        /// How long allocations get to move.
        deadline: DurationSpec,
    },
    /// Power-cycles the node through its provider.
    Reboot {
        /// The provider (the node's or the default when `None`).
        provider: Option<String>,
    },
    /// Reinstalls the node through its provider (drained first while it
    /// is up).
    Rebuild {
        /// The provider (the node's or the default when `None`).
        provider: Option<String>,
    },
    /// Deletes the node's machine through its provider (drained and
    /// retired first while it is up); the node stays retired until purged.
    Delete {
        /// The provider (the node's or the default when `None`).
        provider: Option<String>,
    },
    /// Creates a machine with the node's name and labels through the
    /// provider (refused while a node of that name is up).
    Create {
        /// The provider (the node's or the default when `None`).
        provider: Option<String>,
    },
    /// Deletes the node's machine, then creates one with the same name and
    /// labels.
    Replace {
        /// The provider (the node's or the default when `None`).
        provider: Option<String>,
    },
    /// Runs a command.
    Command {
        /// Where.
        on: CommandTarget,
        /// The command (a template over the node).
        command: Template,
        /// How long it may run.
        timeout: DurationSpec,
    },
    /// Calls a URL.
    Webhook {
        /// The URL.
        url: String,
    },
}

impl Action {
    /// The provider a machine action names (`None` for other actions, or
    /// when it names none).
    pub fn provider(&self) -> Option<&str> {
        match self {
            Action::Reboot { provider }
            | Action::Rebuild { provider }
            | Action::Delete { provider }
            | Action::Create { provider }
            | Action::Replace { provider } => provider.as_deref(),
            _ => None,
        }
    }

    /// The block name, for messages and listings.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::RestartAlloc => "restart_alloc",
            Action::RestartJob { .. } => "restart_job",
            Action::Drain { .. } => "drain",
            Action::Reboot { .. } => "reboot",
            Action::Rebuild { .. } => "rebuild",
            Action::Delete { .. } => "delete",
            Action::Create { .. } => "create",
            Action::Replace { .. } => "replace",
            Action::Command { .. } => "command",
            Action::Webhook { .. } => "webhook",
        }
    }
}

/// How a hammer acts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Acts within its limits without asking.
    Auto,
    /// Asks a human (`drover hammer approve`) for every run.
    #[default]
    Approve,
    /// Records what it would have done, does nothing.
    DryRun,
}

impl Mode {
    /// The name used in files and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Approve => "approve",
            Mode::DryRun => "dry-run",
        }
    }
}

/// A hammer's safety limits.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Runs started in any sliding hour.
    pub per_hour: u32,
    /// Runs in progress at once.
    pub concurrent: u32,
    /// The minimum time between two runs on the same target.
    pub cooldown: DurationSpec,
    /// Runs on the same target within `attempts_window`; past it the
    /// hammer stops and escalates to a human.
    pub max_attempts: u32,
    /// The window `max_attempts` is counted over.
    pub attempts_window: DurationSpec,
    /// The share of the fleet (in percent) whose triggers within
    /// `fleet_window` make the hammer stop and escalate: a storm is a
    /// problem for a human, not for a hammer.
    pub fleet_max_percent: f64,
    /// The window of the fleet-wide guard.
    pub fleet_window: DurationSpec,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_hour: 5,
            concurrent: 1,
            cooldown: DurationSpec::from_secs(30 * 60),
            max_attempts: 3,
            attempts_window: DurationSpec::from_secs(24 * 3600),
            fleet_max_percent: 10.0,
            fleet_window: DurationSpec::from_secs(3600),
        }
    }
}
