//! `SIGHUP`: reading the configuration again while a role runs.
//!
//! The files are read again and merged under the command line of the start
//! (flags and environment variables do not change in a running process).
//! Keys marked [`Apply::Reload`] take their new values; the others keep
//! the running ones, and the one log line of the reload names them as
//! needing a restart (at every reload, until the role is restarted). A file
//! with a problem changes nothing: the problem is logged and the running
//! configuration stays in force.
//!
//! The log filter (`log_level`) is applied here for every role, through the
//! handle [`reloadable_log_filter`] keeps when logging starts.

use std::sync::OnceLock;

use tracing_subscriber::{EnvFilter, Registry, reload};

use super::{Apply, Key, RoleArgs, Settings};

/// The log filter of this process and the filter it started with.
static LOG_FILTER: OnceLock<(reload::Handle<EnvFilter, Registry>, String)> = OnceLock::new();

/// Wraps the process's log filter so that a reload can replace it; called
/// once, where logging starts.
pub(crate) fn reloadable_log_filter(filter: EnvFilter) -> reload::Layer<EnvFilter, Registry> {
    let initial = filter.to_string();
    let (layer, handle) = reload::Layer::new(filter);
    let _ = LOG_FILTER.set((handle, initial));
    layer
}

/// Applies `log_level` when it is set (otherwise the filter logging started
/// with stays, or comes back).
pub(crate) fn apply_log_level(settings: &Settings) {
    let Some((handle, initial)) = LOG_FILTER.get() else { return };
    let wanted = settings.text("log_level").unwrap_or_else(|| initial.clone());
    match EnvFilter::builder().parse(&wanted) {
        Ok(filter) => {
            if let Err(error) = handle.reload(filter) {
                tracing::warn!(%error, "cannot change the log filter");
            }
        }
        Err(error) => tracing::warn!(filter = %wanted, %error, "cannot change the log filter"),
    }
}

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Keys whose new value is now in force.
    pub(crate) applied: Vec<&'static str>,
    /// Keys whose new value waits for a restart.
    pub(crate) need_restart: Vec<&'static str>,
}

/// Reads the configuration again and applies what can change while running:
/// `running` takes the new values of the reloadable keys, `apply` makes the
/// role use them (it is given the keys that changed). Logs one line.
pub(crate) fn reload(
    args: &RoleArgs,
    running: &mut Settings,
    apply: impl FnOnce(&Settings, &[&'static Key]),
) -> Option<Outcome> {
    let fresh = match args.load(running.role, running.keys) {
        Ok(fresh) => fresh,
        Err(diagnostics) => {
            let problems: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            tracing::error!(
                problems = %problems.join("; "),
                "configuration not reloaded: the running configuration stays in force; fix the file and send SIGHUP again"
            );
            return None;
        }
    };
    let changed = running.changed_keys(&fresh);
    let (live, later): (Vec<&'static Key>, Vec<&'static Key>) =
        changed.into_iter().partition(|key| key.apply == Apply::Reload);
    for key in &live {
        running.adopt(key, &fresh);
    }
    if live.iter().any(|key| key.name == "log_level") {
        apply_log_level(running);
    }
    apply(running, &live);
    let outcome = Outcome {
        applied: live.iter().map(|key| key.name).collect(),
        need_restart: later.iter().map(|key| key.name).collect(),
    };
    let list = |names: &[&str]| if names.is_empty() { "nothing".to_owned() } else { names.join(", ") };
    tracing::info!(
        reloaded = %list(&outcome.applied),
        needs_restart = %list(&outcome.need_restart),
        "configuration reloaded"
    );
    Some(outcome)
}

/// Resolves at each `SIGHUP`; never when the signal cannot be watched.
pub(crate) struct Hangups(Option<tokio::signal::unix::Signal>);

impl Hangups {
    /// Starts watching `SIGHUP` (from then on it no longer ends the process).
    pub(crate) fn watch() -> Hangups {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => Hangups(Some(signal)),
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGHUP: the configuration cannot be reloaded");
                Hangups(None)
            }
        }
    }

    /// The next `SIGHUP`.
    pub(crate) async fn next(&mut self) {
        match &mut self.0 {
            Some(signal) => {
                if signal.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}
