//! Configuration of the long-running roles, `drover server` and `drover
//! agent`: flags, `DROVER_…` environment variables and HCL files, merged
//! with the precedence flag > environment > file > default.
//!
//! Each role describes its settings once, as a table of [`Key`]s
//! (`server.rs`, `agent.rs`): the name in a file, the flag, the
//! environment variable, the type, the default and whether a `SIGHUP`
//! applies a change. Everything else is derived from that table, so a
//! setting cannot have a flag without a file key or an environment
//! variable:
//!
//! - the role's flags ([`RoleArgs`], a hand-written `clap::Args`);
//! - reading files against it (`file.rs`: unknown keys and bad values with
//!   file:line:column);
//! - the merged [`Settings`], which the role is built from, which
//!   `--print-config` prints with the origin of every value (`print.rs`),
//!   and which a reload compares with the running ones.
//!
//! Flags and environment variables are read once, at start; a reload reads
//! the files again and merges them under the same command line.

pub(crate) mod agent;
mod file;
mod print;
pub(crate) mod reload;
pub(crate) mod server;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{BoolishValueParser, ValueParser};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches};

use drover_hcl::Diagnostics;
use drover_types::DurationSpec;

/// The type of a setting, which says how its text (a flag, an environment
/// variable, a default) and its file value are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Any text.
    Text,
    /// Text never printed (a join token).
    Secret,
    /// A file or directory.
    Path,
    /// `IP:port`.
    Address,
    /// `"30s"`, `"90d"`.
    Duration,
    /// A whole number.
    Count,
    /// On or off; a flag without a value on the command line.
    Switch,
    /// Several texts: a comma-separated or repeated flag, a list in a file.
    List,
    /// `key=value` entries: a repeated flag, a map in a file. Layers merge
    /// entry by entry.
    Map,
    /// A log filter: a level (`info`) or `tracing` directives
    /// (`info,drover_agent=debug`).
    LogFilter,
}

impl Kind {
    /// How `--help` names the value.
    const fn value_name(self) -> &'static str {
        match self {
            Kind::Text | Kind::Secret => "TEXT",
            Kind::Path => "PATH",
            Kind::Address => "ADDR",
            Kind::Duration => "DURATION",
            Kind::Count => "N",
            Kind::Switch => "BOOL",
            Kind::List => "LIST",
            Kind::Map => "KEY=VALUE",
            Kind::LogFilter => "FILTER",
        }
    }

    /// Reads the text of a flag, an environment variable or a default.
    /// Errors say what was expected.
    pub(crate) fn parse(self, text: &str) -> Result<Value, String> {
        match self {
            Kind::Text | Kind::Secret => Ok(Value::Text(text.to_owned())),
            Kind::Path if text.is_empty() => Err("expected a path, got nothing".to_owned()),
            Kind::Path => Ok(Value::Path(PathBuf::from(text))),
            Kind::Address => parse_address(text).map(Value::Address),
            Kind::Duration => {
                text.parse::<DurationSpec>().map(|duration| Value::Duration(duration.get())).map_err(|e| e.to_string())
            }
            Kind::Count => text
                .trim()
                .parse::<u64>()
                .map(Value::Count)
                .map_err(|_| format!("expected a whole number, got {text:?}")),
            Kind::Switch => parse_switch(text).map(Value::Switch),
            Kind::List => Ok(Value::List(vec![text.trim().to_owned()])),
            Kind::Map => {
                crate::roles::parse_key_value(text).map(|(key, value)| Value::Map(BTreeMap::from([(key, value)])))
            }
            Kind::LogFilter => check_log_filter(text).map(|()| Value::Text(text.to_owned())),
        }
    }
}

/// `IP:port`, with the message every reader of an address gives.
pub(crate) fn parse_address(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse::<SocketAddr>().map_err(|_| {
        format!("expected an address written IP:port, such as \"0.0.0.0:4747\" or \"[::1]:4747\", got {text:?}")
    })
}

fn parse_switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("expected true or false, got {text:?}")),
    }
}

/// Whether `text` is a log filter `tracing` accepts. A word alone must be
/// a level: `tracing` would take `loud` for a target to log everything of,
/// which is a typo far more often than a wish.
pub(crate) fn check_log_filter(text: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let explain = |problem: String| {
        format!(
            "{problem}: write a level (off, error, warn, info, debug, trace) or directives such as \"warn,drover=debug\""
        )
    };
    for directive in text.split(',').map(str::trim).filter(|directive| !directive.is_empty()) {
        let is_word = directive.chars().all(|character| character.is_ascii_alphanumeric() || character == '_');
        if is_word && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(explain(format!("{directive:?} is not a log level")));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map(|_| ())
        .map_err(|error| explain(format!("{text:?} is not a log filter ({error})")))
}

/// A value of a setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// [`Kind::Text`], [`Kind::Secret`], [`Kind::LogFilter`].
    Text(String),
    /// [`Kind::Path`].
    Path(PathBuf),
    /// [`Kind::Address`].
    Address(SocketAddr),
    /// [`Kind::Duration`].
    Duration(Duration),
    /// [`Kind::Count`].
    Count(u64),
    /// [`Kind::Switch`].
    Switch(bool),
    /// [`Kind::List`].
    List(Vec<String>),
    /// [`Kind::Map`].
    Map(BTreeMap<String, String>),
}

/// Whether a running role applies a change of a setting on `SIGHUP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Apply {
    /// On `SIGHUP`.
    Reload,
    /// Only when the role is started again.
    Restart,
}

/// One setting of a role.
#[derive(Debug)]
pub(crate) struct Key {
    /// Its name in a file: `bind`, or `block.attribute` (`heartbeat.ttl`).
    pub(crate) name: &'static str,
    /// The flag, without `--`.
    pub(crate) flag: &'static str,
    /// The environment variable.
    pub(crate) env: &'static str,
    pub(crate) kind: Kind,
    /// The default, written as on the command line; `None`: not set.
    pub(crate) default: Option<&'static str>,
    /// One line for `--help` and the documentation.
    pub(crate) help: &'static str,
    pub(crate) apply: Apply,
    /// Why a file may not set it (a one-time action such as
    /// `--forget-cluster`), or `None` when it may.
    pub(crate) not_in_files: Option<&'static str>,
}

/// The log level key, the same for every role.
pub(crate) const LOG_LEVEL: Key = Key::new(
    "log_level",
    "log-level",
    "DROVER_LOG",
    Kind::LogFilter,
    "What drover logs: a level (error, warn, info, debug, trace) or tracing directives such as warn,drover=debug (the default: drover at info, its libraries at warn)",
)
.default(crate::logging::ROLE_DEFAULT_FILTER)
.reloadable();

impl Key {
    /// A setting with no default, not applied on reload, allowed in files.
    pub(crate) const fn new(
        name: &'static str,
        flag: &'static str,
        env: &'static str,
        kind: Kind,
        help: &'static str,
    ) -> Key {
        Key { name, flag, env, kind, default: None, help, apply: Apply::Restart, not_in_files: None }
    }

    /// With a default, written as on the command line.
    pub(crate) const fn default(self, text: &'static str) -> Key {
        Key { default: Some(text), ..self }
    }

    /// Applied by a running role on `SIGHUP`.
    pub(crate) const fn reloadable(self) -> Key {
        Key { apply: Apply::Reload, ..self }
    }

    /// Only on the command line or in the environment, for `reason`.
    pub(crate) const fn not_in_files(self, reason: &'static str) -> Key {
        Key { not_in_files: Some(reason), ..self }
    }

    /// The block of a file it is in (`heartbeat`), if any, and its
    /// attribute name there.
    pub(crate) fn block_and_attribute(&self) -> (Option<&'static str>, &'static str) {
        match self.name.split_once('.') {
            Some((block, attribute)) => (Some(block), attribute),
            None => (None, self.name),
        }
    }
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The built-in default.
    Default,
    /// A configuration file, at a line and column.
    File {
        /// The file, as the user named it (or its directory joined with its
        /// name).
        file: String,
        line: usize,
        column: usize,
    },
    /// An environment variable.
    Env(&'static str),
    /// A flag.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => formatter.write_str("default"),
            Origin::File { file, line, column } => write!(formatter, "{file}:{line}:{column}"),
            Origin::Env(variable) => write!(formatter, "env {variable}"),
            Origin::Flag(flag) => write!(formatter, "flag --{flag}"),
        }
    }
}

/// A value found for a key in one layer (a file, the command line, the
/// defaults).
#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub(crate) key: &'static Key,
    pub(crate) value: Value,
    pub(crate) origin: Origin,
}

/// A value of the merged configuration, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Setting {
    pub(crate) value: Value,
    pub(crate) origin: Origin,
}

/// The effective configuration of a role: every key's value and origin.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// `drover server`, `drover agent`.
    pub(crate) role: &'static str,
    pub(crate) keys: &'static [Key],
    /// The files read, in the order they were merged.
    pub(crate) files: Vec<String>,
    /// Keys that are not maps, by name; absent when not set.
    values: BTreeMap<&'static str, Setting>,
    /// Map keys, entry by entry, each with its origin.
    maps: BTreeMap<&'static str, BTreeMap<String, (String, Origin)>>,
}

impl Settings {
    /// Merges layers, lowest precedence first, over the defaults of `keys`.
    pub(crate) fn merge(role: &'static str, keys: &'static [Key], files: Vec<String>, layers: &[&[Found]]) -> Settings {
        let mut settings = Settings { role, keys, files, values: BTreeMap::new(), maps: BTreeMap::new() };
        for key in keys {
            let default = key.default.map(|text| key.kind.parse(text));
            debug_assert!(!matches!(default, Some(Err(_))), "the default of {} does not parse", key.name);
            if let Some(Ok(value)) = default {
                settings.set(&Found { key, value, origin: Origin::Default });
            }
        }
        for found in layers.iter().flat_map(|layer| layer.iter()) {
            settings.set(found);
        }
        settings
    }

    fn set(&mut self, found: &Found) {
        match &found.value {
            Value::Map(entries) => {
                let map = self.maps.entry(found.key.name).or_default();
                for (entry, text) in entries {
                    map.insert(entry.clone(), (text.clone(), found.origin.clone()));
                }
            }
            value => {
                self.values.insert(found.key.name, Setting { value: value.clone(), origin: found.origin.clone() });
            }
        }
    }

    /// The value and origin of a key that is not a map.
    pub(crate) fn setting(&self, name: &str) -> Option<&Setting> {
        debug_assert!(self.keys.iter().any(|key| key.name == name), "{name} is not a key of {}", self.role);
        self.values.get(name)
    }

    /// Where the value of `name` came from (the default when unset).
    pub(crate) fn origin(&self, name: &str) -> Origin {
        self.setting(name).map_or(Origin::Default, |setting| setting.origin.clone())
    }

    /// `name (origin)`: how messages about several keys name each.
    pub(crate) fn named(&self, name: &str) -> String {
        format!("{name} ({})", self.origin(name))
    }

    pub(crate) fn text(&self, name: &str) -> Option<String> {
        match self.setting(name)?.value {
            Value::Text(ref text) => Some(text.clone()),
            _ => None,
        }
    }

    pub(crate) fn path(&self, name: &str) -> Option<PathBuf> {
        match self.setting(name)?.value {
            Value::Path(ref path) => Some(path.clone()),
            _ => None,
        }
    }

    pub(crate) fn address(&self, name: &str) -> Option<SocketAddr> {
        match self.setting(name)?.value {
            Value::Address(address) => Some(address),
            _ => None,
        }
    }

    pub(crate) fn duration(&self, name: &str) -> Option<Duration> {
        match self.setting(name)?.value {
            Value::Duration(duration) => Some(duration),
            _ => None,
        }
    }

    pub(crate) fn count(&self, name: &str) -> Option<u64> {
        match self.setting(name)?.value {
            Value::Count(count) => Some(count),
            _ => None,
        }
    }

    /// A switch; off when unset.
    pub(crate) fn switch(&self, name: &str) -> bool {
        matches!(self.setting(name).map(|setting| &setting.value), Some(Value::Switch(true)))
    }

    /// A list; empty when unset.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        match self.setting(name).map(|setting| &setting.value) {
            Some(Value::List(items)) => items.clone(),
            _ => Vec::new(),
        }
    }

    /// A map's entries; empty when unset.
    pub(crate) fn map(&self, name: &str) -> BTreeMap<String, String> {
        debug_assert!(self.keys.iter().any(|key| key.name == name), "{name} is not a key of {}", self.role);
        self.maps
            .get(name)
            .map(|entries| entries.iter().map(|(entry, (text, _))| (entry.clone(), text.clone())).collect())
            .unwrap_or_default()
    }

    /// A map's entries with their origins.
    pub(crate) fn map_entries(&self, name: &str) -> Option<&BTreeMap<String, (String, Origin)>> {
        self.maps.get(name)
    }

    /// The keys whose value differs in `other` (origins aside), in table
    /// order.
    pub(crate) fn changed_keys(&self, other: &Settings) -> Vec<&'static Key> {
        self.keys
            .iter()
            .filter(|key| match key.kind {
                Kind::Map => self.map(key.name) != other.map(key.name),
                _ => {
                    self.values.get(key.name).map(|setting| &setting.value)
                        != other.values.get(key.name).map(|setting| &setting.value)
                }
            })
            .collect()
    }

    /// Takes the value of `key` from `other` (a reload applying it).
    pub(crate) fn adopt(&mut self, key: &'static Key, other: &Settings) {
        match other.values.get(key.name) {
            Some(setting) => {
                self.values.insert(key.name, setting.clone());
            }
            None => {
                self.values.remove(key.name);
            }
        }
        match other.maps.get(key.name) {
            Some(entries) => {
                self.maps.insert(key.name, entries.clone());
            }
            None => {
                self.maps.remove(key.name);
            }
        }
    }

    /// The configuration as HCL, each value followed by its origin: what
    /// `--print-config` prints.
    pub(crate) fn render(&self) -> String {
        print::render(self)
    }
}

/// The arguments every configurable role takes: its settings' flags, plus
/// `--config` and `--print-config`.
#[derive(Clone, Debug, Default)]
pub(crate) struct RoleArgs {
    /// `--config FILE|DIR`.
    pub(crate) config: Option<PathBuf>,
    /// `--print-config`.
    pub(crate) print_config: bool,
    /// What flags and environment variables set, read once at start.
    pub(crate) command_line: Vec<Found>,
}

const CONFIG_FLAG: &str = "config";
const CONFIG_ENV: &str = "DROVER_CONFIG";
const PRINT_CONFIG_FLAG: &str = "print-config";

impl RoleArgs {
    /// The clap arguments of a role whose settings are `keys`.
    pub(crate) fn arguments(keys: &'static [Key]) -> Vec<Arg> {
        let mut arguments = vec![
            Arg::new(CONFIG_FLAG)
                .long(CONFIG_FLAG)
                .env(CONFIG_ENV)
                .value_name("FILE|DIR")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Read settings from this HCL file, or from every *.hcl file of this directory in name order (later files override earlier ones); flags and DROVER_* variables override the files"),
            Arg::new(PRINT_CONFIG_FLAG)
                .long(PRINT_CONFIG_FLAG)
                .action(ArgAction::SetTrue)
                .help("Print the effective configuration, with where each value came from, and exit"),
        ];
        arguments.extend(keys.iter().map(argument));
        arguments
    }

    /// Reads the values of `keys` that a flag or an environment variable
    /// set.
    pub(crate) fn from_matches(keys: &'static [Key], matches: &ArgMatches) -> RoleArgs {
        let config = matches.try_get_one::<PathBuf>(CONFIG_FLAG).ok().flatten().cloned();
        let print_config = matches.try_get_one::<bool>(PRINT_CONFIG_FLAG).ok().flatten().copied().unwrap_or(false);
        let command_line = keys
            .iter()
            .filter_map(|key| {
                let origin = origin_of(matches, key.flag, key.env)?;
                let value = match key.kind {
                    Kind::Switch => Value::Switch(*matches.try_get_one::<bool>(key.flag).ok()??),
                    Kind::List => Value::List(
                        values_of(matches, key.flag)
                            .into_iter()
                            .filter_map(|value| match value {
                                Value::List(items) => Some(items),
                                _ => None,
                            })
                            .flatten()
                            .filter(|item| !item.is_empty())
                            .collect(),
                    ),
                    Kind::Map => Value::Map(
                        values_of(matches, key.flag)
                            .into_iter()
                            .filter_map(|value| match value {
                                Value::Map(entries) => Some(entries),
                                _ => None,
                            })
                            .flatten()
                            .collect(),
                    ),
                    _ => values_of(matches, key.flag).into_iter().next_back()?,
                };
                Some(Found { key, value, origin })
            })
            .collect();
        RoleArgs { config, print_config, command_line }
    }

    /// The effective configuration: the defaults, the files of `--config`
    /// and the command line. Every problem of every file is reported at
    /// once.
    pub(crate) fn load(&self, role: &'static str, keys: &'static [Key]) -> Result<Settings, Diagnostics> {
        let (files, found) = match &self.config {
            Some(path) => file::read(path, role, keys)?,
            None => (Vec::new(), Vec::new()),
        };
        Ok(Settings::merge(role, keys, files, &[&found, &self.command_line]))
    }

    /// [`RoleArgs::load`] at start: problems stop the role.
    pub(crate) fn load_at_start(&self, role: &'static str, keys: &'static [Key]) -> anyhow::Result<Settings> {
        self.load(role, keys).map_err(|diagnostics| {
            let count = diagnostics.len();
            let problems = if count == 1 { "a problem".to_owned() } else { format!("{count} problems") };
            anyhow::anyhow!("the configuration has {problems}; nothing was started:\n{diagnostics}")
        })
    }
}

fn origin_of(matches: &ArgMatches, flag: &'static str, env: &'static str) -> Option<Origin> {
    match matches.value_source(flag)? {
        ValueSource::CommandLine => Some(Origin::Flag(flag)),
        ValueSource::EnvVariable => Some(Origin::Env(env)),
        _ => None,
    }
}

fn values_of(matches: &ArgMatches, flag: &str) -> Vec<Value> {
    matches.try_get_many::<Value>(flag).ok().flatten().map(|values| values.cloned().collect()).unwrap_or_default()
}

/// The clap argument of one setting.
fn argument(key: &'static Key) -> Arg {
    let help = match key.default {
        Some(default) => format!("{} [default: {default}]", key.help),
        None => key.help.to_owned(),
    };
    let argument = Arg::new(key.flag).long(key.flag).env(key.env).help(help);
    let kind = key.kind;
    let parser = ValueParser::new(move |text: &str| kind.parse(text));
    match kind {
        Kind::Switch => argument.action(ArgAction::SetTrue).value_parser(BoolishValueParser::new()),
        Kind::List => {
            argument.action(ArgAction::Append).value_delimiter(',').value_name(kind.value_name()).value_parser(parser)
        }
        Kind::Map => {
            argument.action(ArgAction::Append).value_delimiter(',').value_name(kind.value_name()).value_parser(parser)
        }
        Kind::Secret => {
            argument.action(ArgAction::Set).value_name(kind.value_name()).value_parser(parser).hide_env_values(true)
        }
        _ => argument.action(ArgAction::Set).value_name(kind.value_name()).value_parser(parser),
    }
}

/// Implements `clap::Args` for a role's argument struct, a newtype around
/// [`RoleArgs`], from its key table.
macro_rules! role_args {
    ($name:ident, $keys:expr) => {
        impl clap::FromArgMatches for $name {
            fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
                Ok($name($crate::config::RoleArgs::from_matches($keys, matches)))
            }

            fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
                self.0 = $crate::config::RoleArgs::from_matches($keys, matches);
                Ok(())
            }
        }

        impl clap::Args for $name {
            fn augment_args(command: clap::Command) -> clap::Command {
                command.args($crate::config::RoleArgs::arguments($keys))
            }

            fn augment_args_for_update(command: clap::Command) -> clap::Command {
                Self::augment_args(command)
            }
        }
    };
}
pub(crate) use role_args;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_parses() {
        for key in server::KEYS.iter().chain(agent::KEYS) {
            if let Some(default) = key.default {
                assert!(key.kind.parse(default).is_ok(), "{}: default {default:?}", key.name);
            }
        }
    }

    #[test]
    fn every_flag_of_the_roles_has_an_environment_variable() {
        use clap::CommandFactory as _;
        let command = crate::Cli::command();
        for role in ["server", "agent"] {
            let subcommand = command.find_subcommand(role).expect("the role");
            let mut num_flags = 0;
            for argument in subcommand.get_arguments() {
                let id = argument.get_id().as_str();
                if matches!(id, "help" | "version" | PRINT_CONFIG_FLAG) || argument.is_positional() {
                    continue;
                }
                num_flags += 1;
                assert!(argument.get_env().is_some(), "drover {role} --{id} has no environment variable");
            }
            assert!(num_flags > 10, "drover {role} has its flags");
        }
    }

    #[test]
    fn the_documentation_lists_every_key_with_its_flag_and_variable() {
        let documentation = include_str!("../../../../docs/configuration.md");
        for key in server::KEYS.iter().chain(agent::KEYS) {
            let row = format!("| `{}` | `--{}` | `{}` |", key.name, key.flag, key.env);
            assert!(documentation.contains(&row), "docs/configuration.md lacks the row {row}");
        }
    }

    #[test]
    fn every_key_has_a_flag_and_an_environment_variable_of_its_own() {
        for keys in [server::KEYS, agent::KEYS] {
            let mut flags = std::collections::BTreeSet::new();
            let mut variables = std::collections::BTreeSet::new();
            let mut names = std::collections::BTreeSet::new();
            for key in keys {
                assert!(key.env.starts_with("DROVER_"), "{}", key.name);
                assert!(flags.insert(key.flag), "flag --{} twice", key.flag);
                assert!(variables.insert(key.env), "{} twice", key.env);
                assert!(names.insert(key.name), "{} twice", key.name);
            }
        }
    }
}
