//! Reading one site file: the blocks and attributes of providers, notifiers,
//! alert rules and hammers, with their defaults.
//!
//! Each reader takes a [`BlockReader`], asks for the names it knows, records
//! every problem at its position and finishes the block, so that unknown
//! names are reported with a suggestion. Names that point at other objects
//! (notifiers, alert rules, providers) are only recorded here, as
//! [`Reference`]s: they may be defined in another file of the folder, and
//! are checked once every file is read (see `validate`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use drover_hcl::expression::describe_value;
use drover_hcl::suggest::did_you_mean;
use drover_hcl::{BlockReader, Evaluation, Location, Value};
use drover_types::DurationSpec;

use drover_react::matcher::{Matcher, Selector};
use drover_react::schema::{
    Action, AlertRule, AllocCheck, AllocCondition, CommandTarget, Condition, GroupBy, Hammer, HammerTrigger, Limits,
    LogCondition, LogSink, LogSinkKind, LokiFormat, MetricCondition, Mode, NodeCondition, NodeEvent, Notifier,
    NotifierKind, Provider, ProviderOperation, RetryPolicy, Runbook, Severity, Threshold,
};
use drover_react::template::{PlaceholderSet, Template};

/// The kinds of top-level objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ObjectKind {
    Provider,
    Notifier,
    Alert,
    Hammer,
    LogSink,
}

impl ObjectKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Provider => "provider",
            ObjectKind::Notifier => "notifier",
            ObjectKind::Alert => "alert",
            ObjectKind::Hammer => "hammer",
            ObjectKind::LogSink => "log_sink",
        }
    }
}

/// Where something was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) file: String,
    pub(crate) location: Location,
}

/// A name that must resolve to another object of the site.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// A notifier by name.
    Notifier(String),
    /// An alert rule by name.
    Alert(String),
    /// A provider that has the operation: named, or the node's / the
    /// default one when `None`.
    Provider(Option<String>, ProviderOperation),
}

#[derive(Clone, Debug)]
pub(crate) struct Reference {
    pub(crate) target: Target,
    /// `notify of alert "x"`: who refers, for messages.
    pub(crate) from: String,
    pub(crate) origin: Origin,
}

/// Everything read from the files of a folder so far.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    /// Every labelled object block, read successfully or not (so that a
    /// reference to a broken object is not reported as unknown too).
    pub(crate) definitions: Vec<(ObjectKind, String, Origin)>,
    pub(crate) providers: Vec<Provider>,
    pub(crate) notifiers: Vec<Notifier>,
    pub(crate) alerts: Vec<AlertRule>,
    pub(crate) hammers: Vec<Hammer>,
    pub(crate) log_sinks: Vec<LogSink>,
    pub(crate) references: Vec<Reference>,
    /// Where each provider says `default = true`.
    pub(crate) default_providers: Vec<(String, Origin)>,
}

/// The state of reading one file.
pub(crate) struct FileReader<'collected> {
    pub(crate) file: String,
    pub(crate) folder: &'collected Path,
    /// Locations of `metric { … }` blocks (as opposed to `metric = "…"`
    /// attributes), found in the raw syntax tree.
    pub(crate) metric_blocks: BTreeSet<Location>,
    pub(crate) collected: &'collected mut Collected,
}

/// The `source` of every line drover indexes (what the agent ships, the
/// leader's console polls, the audit log).
const LOG_SOURCES: [&str; 6] = ["task", "file", "journal", "syslog", "console", "audit"];
const NODE_STATUSES: [&str; 6] = ["ready", "down", "disconnected", "initializing", "draining", "ineligible"];
const ALLOC_STATUSES: [&str; 5] = ["pending", "running", "complete", "failed", "lost"];
const CHECK_STATES: [&str; 1] = ["failing"];

impl FileReader<'_> {
    /// Reads the top level of a file.
    pub(crate) fn read(&mut self, evaluation: &Evaluation) {
        let mut root = evaluation.root();
        root.unsupported("job", "job files are named *.nomad.hcl and are run with drover job run");
        for block in root.labeled_blocks("provider") {
            self.define(ObjectKind::Provider, &block);
            if let Some(provider) = self.read_provider(block) {
                self.collected.providers.push(provider);
            }
        }
        for block in root.labeled_blocks("notifier") {
            self.define(ObjectKind::Notifier, &block);
            if let Some(notifier) = self.read_notifier(block) {
                self.collected.notifiers.push(notifier);
            }
        }
        for block in root.labeled_blocks("alert") {
            self.define(ObjectKind::Alert, &block);
            if let Some(alert) = self.read_alert(block) {
                self.collected.alerts.push(alert);
            }
        }
        for block in root.labeled_blocks("hammer") {
            self.define(ObjectKind::Hammer, &block);
            if let Some(hammer) = self.read_hammer(block) {
                self.collected.hammers.push(hammer);
            }
        }
        for block in root.labeled_blocks("log_sink") {
            self.define(ObjectKind::LogSink, &block);
            if let Some(sink) = read_log_sink(block) {
                self.collected.log_sinks.push(sink);
            }
        }
        root.finish();
    }

    fn origin(&self, location: Location) -> Origin {
        Origin { file: self.file.clone(), location }
    }

    fn define(&mut self, kind: ObjectKind, block: &BlockReader<'_>) {
        let label = block.label();
        if !is_valid_name(label) {
            let problem =
                if label.is_empty() { "must not be empty".to_owned() } else { format!("{label:?} is not valid") };
            block.report(
                block.label_location(),
                format!(
                    "{} name {problem}: use letters, digits, \"_\", \".\" and \"-\", starting with a letter or a digit",
                    kind.as_str()
                ),
            );
        }
        let origin = self.origin(block.label_location());
        self.collected.definitions.push((kind, label.to_owned(), origin));
    }

    fn refer(&mut self, target: Target, from: String, location: Location) {
        let origin = self.origin(location);
        self.collected.references.push(Reference { target, from, origin });
    }

    // ----- providers -----

    fn read_provider(&mut self, mut block: BlockReader<'_>) -> Option<Provider> {
        let name = block.label().to_owned();
        let default = block.bool("default").unwrap_or(false);
        if default {
            let origin = self.origin(block.attribute_location("default"));
            self.collected.default_providers.push((name.clone(), origin));
        }
        let mut commands = BTreeMap::new();
        let mut valid = true;
        for operation in ProviderOperation::ALL {
            let key = operation.as_str();
            if !block.has(key) {
                continue;
            }
            let set =
                if operation == ProviderOperation::Create { PlaceholderSet::NewMachine } else { PlaceholderSet::Node };
            match template(&mut block, key, set) {
                Some(command) => {
                    commands.insert(operation, command);
                }
                None => valid = false,
            }
        }
        let timeout = positive_duration(&mut block, "timeout", DurationSpec::from_secs(60));
        let console_interval = positive_duration(&mut block, "console_interval", DurationSpec::from_secs(30));
        block.unsupported("api", "write the API call as a command, such as openstack server reboot {{node.name}}");
        if commands.is_empty() && valid {
            block.error(format!(
                "provider \"{name}\" has no command: set at least one of create, reboot, rebuild, delete, console, power_on, power_off"
            ));
        }
        block.finish();
        if !valid {
            return None;
        }
        Some(Provider {
            name,
            default,
            create: commands.remove(&ProviderOperation::Create),
            reboot: commands.remove(&ProviderOperation::Reboot),
            rebuild: commands.remove(&ProviderOperation::Rebuild),
            delete: commands.remove(&ProviderOperation::Delete),
            console: commands.remove(&ProviderOperation::Console),
            power_on: commands.remove(&ProviderOperation::PowerOn),
            power_off: commands.remove(&ProviderOperation::PowerOff),
            timeout: timeout?,
            console_interval: console_interval?,
        })
    }

    // ----- notifiers -----

    fn read_notifier(&mut self, mut block: BlockReader<'_>) -> Option<Notifier> {
        let name = block.label().to_owned();
        let mut kinds: Vec<(Location, Option<NotifierKind>)> = Vec::new();
        if let Some(webhook) = block.block("webhook") {
            kinds.push((webhook.location(), read_webhook_notifier(webhook)));
        }
        if let Some(email) = block.block("email") {
            kinds.push((email.location(), read_email_notifier(email)));
        }
        if let Some(alertmanager) = block.block("alertmanager") {
            kinds.push((alertmanager.location(), read_alertmanager_notifier(alertmanager)));
        }
        let retry = match block.block("retry") {
            Some(retry_block) => read_retry(retry_block),
            None => Some(RetryPolicy::default()),
        };
        block.unsupported("slack", "use a webhook block with the Slack incoming-webhook URL");
        let kind = exactly_one(
            &block,
            kinds,
            &format!("notifier \"{name}\""),
            "webhook { … }, email { … } or alertmanager { … }",
        );
        block.finish();
        Some(Notifier { name, kind: kind?, retry: retry? })
    }

    // ----- alert rules -----

    fn read_alert(&mut self, mut block: BlockReader<'_>) -> Option<AlertRule> {
        let name = block.label().to_owned();
        let when = match block.block("when") {
            Some(when_block) => self.read_alert_when(when_block),
            None => {
                block.error(format!(
                    "alert \"{name}\" has no when block: add when {{ node {{ status = \"down\" }} }} or another condition"
                ));
                None
            }
        };
        let severity = read_severity(&mut block);
        let labels = block.string_map("labels").unwrap_or_default();
        let annotations = block.string_map("annotations").unwrap_or_default();
        let notify = self.read_notify(&mut block, &format!("alert \"{name}\""));
        let runbook = self.read_runbook(&mut block);
        let repeat_interval = if block.has("repeat_interval") {
            Some(positive_duration(&mut block, "repeat_interval", DurationSpec::from_secs(0))?)
        } else {
            None
        };
        block.finish();
        let (condition, hold) = when?;
        Some(AlertRule {
            name,
            condition,
            hold,
            severity: severity?,
            labels,
            annotations,
            notify,
            runbook: runbook?,
            repeat_interval,
        })
    }

    fn read_alert_when(&mut self, mut block: BlockReader<'_>) -> Option<(Condition, DurationSpec)> {
        let description = block.description().to_owned();
        let mut conditions: Vec<(Location, Option<Condition>)> = Vec::new();
        if let Some(node) = block.block("node") {
            conditions.push((node.location(), read_node_condition(node).map(Condition::Node)));
        }
        if let Some(alloc) = block.block("alloc") {
            conditions.push((alloc.location(), read_alloc_condition(alloc).map(Condition::Alloc)));
        }
        if let Some(log) = block.block("log") {
            conditions.push((log.location(), read_log_condition(log).map(Condition::Log)));
        }
        if block.has("metric") {
            let location = block.attribute_location("metric");
            if self.metric_blocks.contains(&location) {
                if let Some(metric) = block.block("metric") {
                    conditions.push((location, read_metric_block(metric).map(Condition::Metric)));
                }
            } else {
                let short = read_metric_short_form(&mut block).map(Condition::Metric);
                conditions.push((location, short));
            }
        } else {
            for stray in ["above", "below"] {
                if block.has(stray) {
                    block.attribute_error(
                        stray,
                        format!(
                            "\"{stray}\" in {description} needs metric = \"<name>{{label=\\\"value\\\"}}\" beside it"
                        ),
                    );
                    block.skip(stray);
                }
            }
        }
        if let Some(alertmanager) = block.block("alertmanager") {
            conditions.push((
                alertmanager.location(),
                read_alertmanager_matchers(alertmanager).map(|matchers| Condition::Alertmanager { matchers }),
            ));
        }
        let hold = duration_or(&mut block, "for", DurationSpec::from_secs(0));
        let condition = exactly_one(
            &block,
            conditions,
            &description,
            "node { … }, alloc { … }, log { … }, metric { … } (or metric = \"…\") or alertmanager { … }",
        );
        block.finish();
        Some((condition?, hold?))
    }

    // ----- hammers -----

    fn read_hammer(&mut self, mut block: BlockReader<'_>) -> Option<Hammer> {
        let name = block.label().to_owned();
        let trigger = match block.block("when") {
            Some(when_block) => self.read_hammer_when(when_block),
            None => {
                block.error(format!(
                    "hammer \"{name}\" has no when block: add when {{ alert = \"<alert name>\" }} or another trigger"
                ));
                None
            }
        };
        let action = match block.block("action") {
            Some(action_block) => self.read_action(action_block),
            None => {
                block.error(format!(
                    "hammer \"{name}\" has no action block: add action {{ reboot {{}} }} or another action"
                ));
                None
            }
        };
        let mode = read_mode(&mut block);
        let limits = match block.block("limits") {
            Some(limits_block) => read_limits(limits_block),
            None => Some(Limits::default()),
        };
        let notify = self.read_notify(&mut block, &format!("hammer \"{name}\""));
        let runbook = self.read_runbook(&mut block);
        block.finish();
        Some(Hammer {
            name,
            trigger: trigger?,
            action: action?,
            mode: mode?,
            limits: limits?,
            runbook: runbook?,
            notify,
        })
    }

    fn read_hammer_when(&mut self, mut block: BlockReader<'_>) -> Option<HammerTrigger> {
        let description = block.description().to_owned();
        let mut triggers: Vec<(Location, Option<HammerTrigger>)> = Vec::new();
        if block.has("alert") {
            let location = block.attribute_location("alert");
            let alert = block.string("alert");
            if let Some(alert_name) = &alert {
                self.refer(Target::Alert(alert_name.clone()), format!("\"alert\" in {description}"), location);
            }
            triggers.push((location, alert.map(HammerTrigger::Alert)));
        }
        if let Some(log) = block.block("log") {
            let location = log.location();
            let trigger = read_hammer_log_trigger(log);
            if let Some(HammerTrigger::Log { source: Some(source), .. }) = &trigger
                && source == "console"
            {
                self.refer(
                    Target::Provider(None, ProviderOperation::Console),
                    format!("source = \"console\" in {description}"),
                    location,
                );
            }
            triggers.push((location, trigger));
        }
        if let Some(mut node) = block.block("node") {
            let location = node.location();
            let event =
                one_of(&mut node, "event", &NodeEvent::NAMES, true).and_then(|name| NodeEvent::from_name(&name));
            node.finish();
            triggers.push((location, event.map(HammerTrigger::Node)));
        }
        if let Some(alertmanager) = block.block("alertmanager") {
            triggers.push((
                alertmanager.location(),
                read_alertmanager_matchers(alertmanager).map(|matchers| HammerTrigger::Alertmanager { matchers }),
            ));
        }
        let trigger = exactly_one(
            &block,
            triggers,
            &description,
            "alert = \"<name>\", log { … }, node { event = \"down\" } or alertmanager { … }",
        );
        block.finish();
        trigger
    }

    fn read_action(&mut self, mut block: BlockReader<'_>) -> Option<Action> {
        let description = block.description().to_owned();
        let mut actions: Vec<(Location, Option<Action>)> = Vec::new();
        if let Some(restart) = block.block("restart_alloc") {
            let location = restart.location();
            restart.finish();
            actions.push((location, Some(Action::RestartAlloc)));
        }
        if let Some(mut restart) = block.block("restart_job") {
            let location = restart.location();
            let job = restart.string("job");
            restart.finish();
            actions.push((location, Some(Action::RestartJob { job })));
        }
        if let Some(mut drain) = block.block("drain") {
            let location = drain.location();
            let deadline = positive_duration(&mut drain, "deadline", DurationSpec::from_secs(3600));
            drain.finish();
            actions.push((location, deadline.map(|deadline| Action::Drain { deadline })));
        }
        for name in ["reboot", "rebuild", "delete", "create", "replace"] {
            let Some(mut provider_block) = block.block(name) else {
                continue;
            };
            let location = provider_block.location();
            let provider = provider_block.string("provider");
            let reference_location =
                if provider.is_some() { provider_block.attribute_location("provider") } else { location };
            provider_block.finish();
            // `replace` deletes, then creates: its provider needs both.
            let operations: &[ProviderOperation] = match name {
                "reboot" => &[ProviderOperation::Reboot],
                "rebuild" => &[ProviderOperation::Rebuild],
                "delete" => &[ProviderOperation::Delete],
                "create" => &[ProviderOperation::Create],
                _ => &[ProviderOperation::Delete, ProviderOperation::Create],
            };
            for operation in operations {
                self.refer(
                    Target::Provider(provider.clone(), *operation),
                    format!("{name} action of {}", description.trim_start_matches("action block of ")),
                    reference_location,
                );
            }
            let action = match name {
                "reboot" => Action::Reboot { provider },
                "rebuild" => Action::Rebuild { provider },
                "delete" => Action::Delete { provider },
                "create" => Action::Create { provider },
                _ => Action::Replace { provider },
            };
            actions.push((location, Some(action)));
        }
        if let Some(mut command_block) = block.block("command") {
            let location = command_block.location();
            let on = match command_block.has("on") {
                true => one_of(&mut command_block, "on", &["node", "server"], false)
                    .map(|on| if on == "server" { CommandTarget::Server } else { CommandTarget::Node }),
                false => Some(CommandTarget::Node),
            };
            let command = if command_block.has("command") {
                template(&mut command_block, "command", PlaceholderSet::Node)
            } else {
                command_block.error(format!("{} needs command = \"…\"", command_block.description()));
                None
            };
            let timeout = positive_duration(&mut command_block, "timeout", DurationSpec::from_secs(60));
            command_block.finish();
            let action = match (on, command, timeout) {
                (Some(on), Some(command), Some(timeout)) => Some(Action::Command { on, command, timeout }),
                _ => None,
            };
            actions.push((location, action));
        }
        if let Some(mut webhook) = block.block("webhook") {
            let location = webhook.location();
            let url = required_url(&mut webhook);
            webhook.finish();
            actions.push((location, url.map(|url| Action::Webhook { url })));
        }
        let action = exactly_one(
            &block,
            actions,
            &description,
            "restart_alloc {}, restart_job {}, drain {}, reboot {}, rebuild {}, delete {}, create {}, replace {}, command { … } or webhook { … }",
        );
        block.finish();
        action
    }

    // ----- shared attributes -----

    fn read_notify(&mut self, block: &mut BlockReader<'_>, owner: &str) -> Vec<String> {
        let location = block.attribute_location("notify");
        let Some(names) = block.string_list("notify") else {
            return Vec::new();
        };
        for name in &names {
            self.refer(Target::Notifier(name.clone()), format!("\"notify\" in {owner}"), location);
        }
        names
    }

    /// `runbook`: `Some(None)` when absent, `None` when invalid.
    fn read_runbook(&mut self, block: &mut BlockReader<'_>) -> Option<Option<Runbook>> {
        if !block.has("runbook") {
            return Some(None);
        }
        let text = block.string("runbook")?;
        if text.starts_with("https://") || text.starts_with("http://") {
            return Some(Some(Runbook::Url(text)));
        }
        let phrase = block.phrase("runbook");
        let relative = Path::new(&text);
        if !text.ends_with(".md") || relative.is_absolute() {
            block.attribute_error(
                "runbook",
                format!("{phrase} must be an http(s) URL or the path of a .md file relative to the site folder, not {text:?}"),
            );
            return None;
        }
        if relative.components().any(|component| matches!(component, std::path::Component::ParentDir)) {
            block.attribute_error(
                "runbook",
                format!("{phrase} must stay inside the site folder: remove \"..\" from {text:?}"),
            );
            return None;
        }
        if !self.folder.join(relative).is_file() {
            block.attribute_error(
                "runbook",
                format!("{phrase}: the file {text:?} does not exist in the site folder {}", self.folder.display()),
            );
            return None;
        }
        Some(Some(Runbook::File(text)))
    }
}

// ----- notifier kinds -----

fn read_webhook_notifier(mut block: BlockReader<'_>) -> Option<NotifierKind> {
    let url = required_url(&mut block);
    let body =
        if block.has("body") { template(&mut block, "body", PlaceholderSet::Alert).map(Some) } else { Some(None) };
    let headers = block.string_map("headers").unwrap_or_default();
    block.finish();
    Some(NotifierKind::Webhook { url: url?, body: body?, headers })
}

fn read_email_notifier(mut block: BlockReader<'_>) -> Option<NotifierKind> {
    let description = block.description().to_owned();
    let smtp = required_string(&mut block, "smtp", "\"mail.example.org:25\"");
    if let Some(address) = &smtp
        && !is_host_port(address)
    {
        block.attribute_error(
            "smtp",
            format!("\"smtp\" in {description} must be host:port, such as \"mail.example.org:25\", not {address:?}"),
        );
    }
    let from = required_string(&mut block, "from", "\"drover@example.org\"");
    let to = block.string_list("to");
    if to.as_ref().is_some_and(Vec::is_empty) || !block.has("to") {
        block.error(format!("{description} needs at least one recipient: to = [\"ops@example.org\"]"));
    }
    let subject = if block.has("subject") {
        template(&mut block, "subject", PlaceholderSet::Alert)
    } else {
        Template::parse(drover_react::schema::DEFAULT_EMAIL_SUBJECT, PlaceholderSet::Alert).ok()
    };
    block.finish();
    let smtp = smtp.filter(|address| is_host_port(address))?;
    let to = to.filter(|recipients| !recipients.is_empty())?;
    Some(NotifierKind::Email { smtp, from: from?, to, subject: subject? })
}

fn read_alertmanager_notifier(mut block: BlockReader<'_>) -> Option<NotifierKind> {
    let url = required_url(&mut block);
    block.finish();
    Some(NotifierKind::Alertmanager { url: url? })
}

fn read_retry(mut block: BlockReader<'_>) -> Option<RetryPolicy> {
    let defaults = RetryPolicy::default();
    let attempts = if block.has("attempts") {
        block.integer("attempts", 1, 100).and_then(|value| u32::try_from(value).ok())
    } else {
        Some(defaults.attempts)
    };
    let backoff = positive_duration(&mut block, "backoff", defaults.backoff);
    block.finish();
    Some(RetryPolicy { attempts: attempts?, backoff: backoff? })
}

// ----- alert conditions -----

fn read_severity(block: &mut BlockReader<'_>) -> Option<Severity> {
    if !block.has("severity") {
        return Some(Severity::default());
    }
    let name = one_of(block, "severity", &["info", "warning", "critical"], false)?;
    Some(match name.as_str() {
        "info" => Severity::Info,
        "critical" => Severity::Critical,
        _ => Severity::Warning,
    })
}

fn read_node_condition(mut block: BlockReader<'_>) -> Option<NodeCondition> {
    let description = block.description().to_owned();
    let mut checks: Vec<(Location, Option<NodeCondition>)> = Vec::new();
    if block.has("status") {
        let location = block.attribute_location("status");
        checks.push((location, one_of(&mut block, "status", &NODE_STATUSES, false).map(NodeCondition::Status)));
    }
    if block.has("heartbeat_age") {
        let location = block.attribute_location("heartbeat_age");
        let age = positive_duration(&mut block, "heartbeat_age", DurationSpec::from_secs(0));
        checks.push((location, age.map(NodeCondition::HeartbeatAge)));
    }
    if block.has("drain_stuck") {
        let location = block.attribute_location("drain_stuck");
        let age = positive_duration(&mut block, "drain_stuck", DurationSpec::from_secs(0));
        checks.push((location, age.map(NodeCondition::DrainStuck)));
    }
    let condition =
        exactly_one(&block, checks, &description, "status = \"down\", heartbeat_age = \"30s\" or drain_stuck = \"1h\"");
    block.finish();
    condition
}

fn read_alloc_condition(mut block: BlockReader<'_>) -> Option<AllocCondition> {
    let description = block.description().to_owned();
    let job = block.string("job");
    let mut checks: Vec<(Location, Option<AllocCheck>)> = Vec::new();
    if block.has("status") {
        let location = block.attribute_location("status");
        checks.push((location, one_of(&mut block, "status", &ALLOC_STATUSES, false).map(AllocCheck::Status)));
    }
    if block.has("restarts") {
        let location = block.attribute_location("restarts");
        let count = block.integer("restarts", 1, i128::from(u32::MAX)).and_then(|value| u32::try_from(value).ok());
        let within = positive_duration(&mut block, "within", DurationSpec::from_secs(600));
        checks.push((location, count.zip(within).map(|(count, within)| AllocCheck::Restarts { count, within })));
    } else if block.has("within") {
        block.attribute_error("within", format!("\"within\" in {description} is only used with restarts = N"));
        block.skip("within");
    }
    if block.has("check") {
        let location = block.attribute_location("check");
        checks.push((location, one_of(&mut block, "check", &CHECK_STATES, false).map(AllocCheck::Check)));
    }
    let check = exactly_one(&block, checks, &description, "status = \"failed\", restarts = N or check = \"failing\"");
    block.finish();
    Some(AllocCondition { job, check: check? })
}

/// The `query` attribute, checked against the log query language: a query
/// that does not parse is reported at its line, since it would never match
/// once applied.
fn read_log_query(block: &mut BlockReader<'_>) -> Option<String> {
    let query = block.string("query")?;
    match drover_filter::log_query::parse(&query) {
        Ok(_) => Some(query),
        Err(error) => {
            block.attribute_error("query", format!("bad log query {query:?}: {error}; see docs/logs.md"));
            None
        }
    }
}

fn read_log_condition(mut block: BlockReader<'_>) -> Option<LogCondition> {
    let description = block.description().to_owned();
    let query = read_log_query(&mut block);
    let source =
        if block.has("source") { one_of(&mut block, "source", &LOG_SOURCES, false).map(Some) } else { Some(None) };
    let matches = block.string("match");
    if query.is_none() && matches.is_none() && !block.has("query") && !block.has("match") {
        block.error(format!("{description} needs match = \"<text>\" or query = \"<log query>\""));
    }
    let at_least = if block.has("at_least") {
        block.integer("at_least", 1, i128::from(u32::MAX)).and_then(|value| u32::try_from(value).ok())
    } else {
        Some(1)
    };
    let within = positive_duration(&mut block, "within", DurationSpec::from_secs(300));
    let by = if block.has("by") {
        one_of(&mut block, "by", &["node", "job"], false)
            .map(|by| if by == "job" { GroupBy::Job } else { GroupBy::Node })
    } else {
        Some(GroupBy::Node)
    };
    block.finish();
    if query.is_none() && matches.is_none() {
        return None;
    }
    Some(LogCondition { query, source: source?, matches, at_least: at_least?, within: within?, by: by? })
}

fn read_metric_block(mut block: BlockReader<'_>) -> Option<MetricCondition> {
    let description = block.description().to_owned();
    let name = required_string(&mut block, "name", "\"disk_used_percent\"");
    let selector = name.and_then(|text| match Selector::parse(&text) {
        Ok(selector) => Some(selector),
        Err(problem) => {
            block.attribute_error("name", format!("\"name\" in {description}: {problem}"));
            None
        }
    });
    let labels = block.string_map("labels").unwrap_or_default();
    let threshold = read_threshold(&mut block, &description);
    block.finish();
    let mut selector = selector?;
    selector.matchers.extend(labels.into_iter().map(|(key, value)| Matcher::equal(key, value)));
    Some(MetricCondition { selector, threshold: threshold? })
}

fn read_metric_short_form(block: &mut BlockReader<'_>) -> Option<MetricCondition> {
    let description = block.description().to_owned();
    let text = block.string("metric")?;
    let selector = match Selector::parse(&text) {
        Ok(selector) => Some(selector),
        Err(problem) => {
            block.attribute_error("metric", format!("\"metric\" in {description}: {problem}"));
            None
        }
    };
    let threshold = read_threshold(block, &description);
    Some(MetricCondition { selector: selector?, threshold: threshold? })
}

fn read_threshold(block: &mut BlockReader<'_>, description: &str) -> Option<Threshold> {
    let above = number(block, "above");
    let below = number(block, "below");
    match (above, below) {
        (Some(limit), None) => Some(Threshold::Above(limit)),
        (None, Some(limit)) => Some(Threshold::Below(limit)),
        (Some(_), Some(_)) => {
            block.attribute_error("below", format!("{description} has both above and below: keep one"));
            None
        }
        (None, None) => {
            if !block.has("above") && !block.has("below") {
                block.error(format!("{description} needs a threshold: above = <number> or below = <number>"));
            }
            None
        }
    }
}

/// `matchers = { name = "value" }` (equality) or `matchers = ["name=~regex",
/// …]`.
fn read_alertmanager_matchers(mut block: BlockReader<'_>) -> Option<Vec<Matcher>> {
    let description = block.description().to_owned();
    let matchers = read_matchers(&mut block, "matchers");
    if matchers.is_none() && !block.has("matchers") {
        block.error(format!(
            "{description} needs matchers = {{ alertname = \"…\" }} or matchers = [\"severity=~critical|warning\"]"
        ));
    }
    block.finish();
    matchers
}

fn read_matchers(block: &mut BlockReader<'_>, name: &str) -> Option<Vec<Matcher>> {
    let phrase = block.phrase(name);
    let value = block.value(name)?;
    match &value {
        Value::Object(entries) => {
            let mut matchers = Vec::new();
            for (key, entry) in entries {
                match drover_hcl::expression::value_as_text(entry) {
                    Some(text) => matchers.push(Matcher::equal(key.clone(), text)),
                    None => {
                        block.attribute_error(
                            name,
                            format!("{phrase} must map to strings, but \"{key}\" is {}", describe_value(entry)),
                        );
                        return None;
                    }
                }
            }
            Some(matchers)
        }
        Value::Array(elements) => {
            let mut matchers = Vec::new();
            let mut valid = true;
            for element in elements {
                let parsed = match element {
                    Value::String(text) => Matcher::parse(text),
                    other => Err(format!("element {} is not a string", describe_value(other))),
                };
                match parsed {
                    Ok(matcher) => matchers.push(matcher),
                    Err(problem) => {
                        block.attribute_error(name, format!("{phrase}: {problem}"));
                        valid = false;
                    }
                }
            }
            valid.then_some(matchers)
        }
        other => {
            block.attribute_error(
                name,
                format!(
                    "{phrase} must be a map such as {{ alertname = \"X\" }} or a list such as [\"node=~batch.*\"], not {}",
                    describe_value(other)
                ),
            );
            None
        }
    }
}

// ----- hammer parts -----

fn read_hammer_log_trigger(mut block: BlockReader<'_>) -> Option<HammerTrigger> {
    let description = block.description().to_owned();
    let source =
        if block.has("source") { one_of(&mut block, "source", &LOG_SOURCES, false).map(Some) } else { Some(None) };
    let matches = block.string("match");
    let query = read_log_query(&mut block);
    let missing = !block.has("match") && !block.has("query");
    if missing {
        block.error(format!("{description} needs match = \"<text>\" or query = \"<log query>\""));
    }
    block.finish();
    if matches.is_none() && query.is_none() {
        return None;
    }
    Some(HammerTrigger::Log { source: source?, matches, query })
}

fn read_mode(block: &mut BlockReader<'_>) -> Option<Mode> {
    if !block.has("mode") {
        return Some(Mode::default());
    }
    let name = one_of(block, "mode", &["auto", "approve", "dry-run"], false)?;
    Some(match name.as_str() {
        "auto" => Mode::Auto,
        "dry-run" => Mode::DryRun,
        _ => Mode::Approve,
    })
}

fn read_limits(mut block: BlockReader<'_>) -> Option<Limits> {
    let description = block.description().to_owned();
    let defaults = Limits::default();
    let count = |block: &mut BlockReader<'_>, name: &str, default: u32| -> Option<u32> {
        if block.has(name) {
            block.integer(name, 1, i128::from(u32::MAX)).and_then(|value| u32::try_from(value).ok())
        } else {
            Some(default)
        }
    };
    let per_hour = count(&mut block, "per_hour", defaults.per_hour);
    let concurrent = count(&mut block, "concurrent", defaults.concurrent);
    let max_attempts = count(&mut block, "max_attempts", defaults.max_attempts);
    let cooldown = duration_or(&mut block, "cooldown", defaults.cooldown);
    let attempts_window = positive_duration(&mut block, "attempts_window", defaults.attempts_window);
    let fleet_window = positive_duration(&mut block, "fleet_window", defaults.fleet_window);
    let percent = number(&mut block, "fleet_max_percent");
    let share = number(&mut block, "max_share");
    let fleet_max_percent = match (percent, share) {
        (Some(_), Some(_)) => {
            block.attribute_error(
                "max_share",
                format!("{description} has both fleet_max_percent and max_share: keep one (max_share = 0.1 is fleet_max_percent = 10)"),
            );
            None
        }
        (Some(value), None) if value > 0.0 && value <= 100.0 => Some(value),
        (Some(value), None) => {
            block.attribute_error(
                "fleet_max_percent",
                format!("\"fleet_max_percent\" in {description} must be more than 0 and at most 100, not {value}"),
            );
            None
        }
        (None, Some(value)) if value > 0.0 && value <= 1.0 => Some(value * 100.0),
        (None, Some(value)) => {
            block.attribute_error(
                "max_share",
                format!("\"max_share\" in {description} must be more than 0 and at most 1, not {value}"),
            );
            None
        }
        (None, None) => Some(defaults.fleet_max_percent),
    };
    block.finish();
    Some(Limits {
        per_hour: per_hour?,
        concurrent: concurrent?,
        cooldown: cooldown?,
        max_attempts: max_attempts?,
        attempts_window: attempts_window?,
        fleet_max_percent: fleet_max_percent?,
        fleet_window: fleet_window?,
    })
}

// ----- log sinks -----

/// The engines a log sink may send to.
const LOG_SINK_TYPES: [&str; 3] = ["loki", "opensearch", "elasticsearch"];

/// `log_sink "NAME" { … }`: the engine is `type`, or the label when it
/// names one (`log_sink "loki" { url = "…" }`).
fn read_log_sink(mut block: BlockReader<'_>) -> Option<LogSink> {
    let name = block.label().to_owned();
    let engine = if block.has("type") {
        one_of(&mut block, "type", &LOG_SINK_TYPES, true)
    } else if LOG_SINK_TYPES.contains(&name.as_str()) {
        Some(name.clone())
    } else {
        block.error(format!(
            "log_sink \"{name}\" needs type = one of {}: the label names the engine only when it is one of them",
            quoted_list(&LOG_SINK_TYPES)
        ));
        None
    };
    let url = required_url(&mut block);
    let headers = if block.has("headers") { block.string_map("headers") } else { Some(BTreeMap::new()) };
    let count = |block: &mut BlockReader<'_>, name: &str, default: u32, maximum: u32| -> Option<u32> {
        if block.has(name) {
            block.integer(name, 1, i128::from(maximum)).and_then(|value| u32::try_from(value).ok())
        } else {
            Some(default)
        }
    };
    let batch_size = count(&mut block, "batch_size", 1000, 100_000);
    let buffer = count(&mut block, "buffer", 100_000, 10_000_000);
    let batch_wait = positive_duration(&mut block, "batch_wait", DurationSpec::from_secs(1));
    let max_backoff = positive_duration(&mut block, "max_backoff", DurationSpec::from_secs(60));
    let kind = match engine.as_deref() {
        Some("loki") => read_loki_sink(&mut block),
        Some(_) => read_opensearch_sink(&mut block),
        None => {
            // Without an engine, its attributes are not also unknown.
            for name in ["labels", "format", "tenant", "index"] {
                block.skip(name);
            }
            None
        }
    };
    block.finish();
    Some(LogSink {
        name,
        kind: kind?,
        url: url?,
        headers: headers?,
        batch_size: batch_size?,
        batch_wait: batch_wait?,
        buffer: buffer?,
        max_backoff: max_backoff?,
    })
}

fn read_loki_sink(block: &mut BlockReader<'_>) -> Option<LogSinkKind> {
    for other in ["index"] {
        if block.has(other) {
            block.attribute_error(
                other,
                format!("\"{other}\" is for OpenSearch sinks; a Loki sink has labels = [\"node\", …]"),
            );
            block.skip(other);
        }
    }
    let labels = if block.has("labels") {
        let labels = block.string_list("labels")?;
        let mut valid = true;
        for label in &labels {
            if !drover_react::schema::LOKI_LABEL_FIELDS.contains(&label.as_str()) {
                block.attribute_error(
                    "labels",
                    format!(
                        "{} names {label:?}, which is not a record field: use {}{}",
                        block.phrase("labels"),
                        quoted_list(&drover_react::schema::LOKI_LABEL_FIELDS),
                        did_you_mean(label, drover_react::schema::LOKI_LABEL_FIELDS.iter().copied())
                    ),
                );
                valid = false;
            }
        }
        if labels.is_empty() {
            block.attribute_error(
                "labels",
                format!("{} must name at least one field, such as \"node\"", block.phrase("labels")),
            );
            valid = false;
        }
        valid.then_some(labels)
    } else {
        Some(drover_react::schema::LOKI_DEFAULT_LABELS.iter().map(|label| (*label).to_owned()).collect())
    };
    let format = if block.has("format") {
        one_of(block, "format", &["protobuf", "json"], false)
            .map(|format| if format == "json" { LokiFormat::Json } else { LokiFormat::Protobuf })
    } else {
        Some(LokiFormat::Protobuf)
    };
    let tenant = if block.has("tenant") { Some(block.string("tenant")?) } else { None };
    Some(LogSinkKind::Loki { labels: labels?, format: format?, tenant })
}

fn read_opensearch_sink(block: &mut BlockReader<'_>) -> Option<LogSinkKind> {
    for other in ["labels", "format", "tenant"] {
        if block.has(other) {
            block.attribute_error(
                other,
                format!("\"{other}\" is for Loki sinks; an OpenSearch sink has index = \"drover-%Y.%m.%d\""),
            );
            block.skip(other);
        }
    }
    let index = if block.has("index") { block.string("index")? } else { "drover-%Y.%m.%d".to_owned() };
    if let Err(problem) = check_index_pattern(&index) {
        block.attribute_error("index", format!("{}: {problem}", block.phrase("index")));
        return None;
    }
    Some(LogSinkKind::Opensearch { index })
}

/// An index pattern: lowercase, no characters OpenSearch refuses in index
/// names, and only the `%Y %m %d %H %%` placeholders.
fn check_index_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if pattern.starts_with(['-', '_', '+']) {
        return Err(format!("{pattern:?} must not start with '-', '_' or '+' (OpenSearch refuses such index names)"));
    }
    let mut characters = pattern.chars();
    while let Some(character) = characters.next() {
        match character {
            '%' => match characters.next() {
                Some('Y' | 'm' | 'd' | 'H' | '%') => {}
                other => {
                    return Err(format!(
                        "{pattern:?} has %{}, which is not a placeholder: use %Y, %m, %d, %H (of the line's time, UTC) or %%",
                        other.map(String::from).unwrap_or_default()
                    ));
                }
            },
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':' => {
                return Err(format!("{pattern:?} has {character:?}, which OpenSearch refuses in index names"));
            }
            upper if upper.is_uppercase() => {
                return Err(format!("{pattern:?} has {upper:?}: index names are lowercase"));
            }
            _ => {}
        }
    }
    Ok(())
}

// ----- small readers -----

/// Attribute `name` as a template of `set`; problems are reported at the
/// placeholder (line and column counted from the opening quote).
pub(crate) fn template(block: &mut BlockReader<'_>, name: &str, set: PlaceholderSet) -> Option<Template> {
    let text = block.string(name)?;
    let phrase = block.phrase(name);
    let start = block.attribute_location(name);
    match Template::parse(&text, set) {
        Ok(template) => Some(template),
        Err(errors) => {
            for error in errors {
                block.report(offset_location(start, &text, error.offset), format!("{phrase}: {}", error.message));
            }
            None
        }
    }
}

/// The position of character `offset` of a string literal that starts (at
/// its quote) at `start`. Exact for one-line strings without escapes.
fn offset_location(start: Location, text: &str, offset: usize) -> Location {
    let before: String = text.chars().take(offset).collect();
    match before.rfind('\n') {
        Some(newline) => Location {
            line: start.line + before.matches('\n').count(),
            column: before[newline + 1..].chars().count() + 1,
        },
        None => Location { line: start.line, column: start.column + 1 + offset },
    }
}

fn required_string(block: &mut BlockReader<'_>, name: &str, example: &str) -> Option<String> {
    if !block.has(name) {
        block.error(format!("{} needs {name} = {example}", block.description()));
        return None;
    }
    block.string(name)
}

fn required_url(block: &mut BlockReader<'_>) -> Option<String> {
    let url = required_string(block, "url", "\"https://…\"")?;
    if url.starts_with("http://") || url.starts_with("https://") {
        return Some(url);
    }
    block.attribute_error("url", format!("{} must start with http:// or https://, not {url:?}", block.phrase("url")));
    None
}

/// Attribute `name` as one of `allowed` (reported with a suggestion
/// otherwise). `required` reports a missing attribute.
fn one_of(block: &mut BlockReader<'_>, name: &str, allowed: &[&str], required: bool) -> Option<String> {
    if !block.has(name) {
        if required {
            block.error(format!("{} needs {name} = one of {}", block.description(), quoted_list(allowed)));
        }
        return None;
    }
    let value = block.string(name)?;
    if allowed.contains(&value.as_str()) {
        return Some(value);
    }
    block.attribute_error(
        name,
        format!(
            "{} must be one of {}, not {value:?}{}",
            block.phrase(name),
            quoted_list(allowed),
            did_you_mean(&value, allowed.iter().copied())
        ),
    );
    None
}

fn quoted_list(names: &[&str]) -> String {
    names.iter().map(|name| format!("\"{name}\"")).collect::<Vec<_>>().join(", ")
}

/// Duration attribute `name`, or `default` when absent.
fn duration_or(block: &mut BlockReader<'_>, name: &str, default: DurationSpec) -> Option<DurationSpec> {
    if block.has(name) { block.duration(name) } else { Some(default) }
}

/// Duration attribute `name` that must be longer than zero, or `default`
/// when absent.
fn positive_duration(block: &mut BlockReader<'_>, name: &str, default: DurationSpec) -> Option<DurationSpec> {
    if !block.has(name) {
        return Some(default);
    }
    let duration = block.duration(name)?;
    if duration.get().is_zero() {
        block.attribute_error(name, format!("{} must be longer than 0s", block.phrase(name)));
        return None;
    }
    Some(duration)
}

/// Attribute `name` as a finite number (numeric strings accepted).
fn number(block: &mut BlockReader<'_>, name: &str) -> Option<f64> {
    let value = block.value(name)?;
    let parsed = match &value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    match parsed {
        Some(float) if float.is_finite() => Some(float),
        _ => {
            block.attribute_error(
                name,
                format!("{} must be a number, not {}", block.phrase(name), describe_value(&value)),
            );
            None
        }
    }
}

/// Of several alternative blocks or attributes, exactly one must be given.
fn exactly_one<T>(
    block: &BlockReader<'_>,
    candidates: Vec<(Location, Option<T>)>,
    description: &str,
    choices: &str,
) -> Option<T> {
    let mut candidates = candidates.into_iter();
    let Some((_, first)) = candidates.next() else {
        block.error(format!("{description} needs one of {choices}"));
        return None;
    };
    let mut valid = true;
    for (location, _) in candidates {
        block.report(location, format!("{description} takes only one of {choices}"));
        valid = false;
    }
    if valid { first } else { None }
}

fn is_host_port(address: &str) -> bool {
    address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|number| number > 0))
}

pub(crate) fn is_valid_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters.next().is_some_and(|first| first.is_ascii_alphanumeric())
        && characters.all(|character| character.is_ascii_alphanumeric() || matches!(character, '_' | '.' | '-'))
}
