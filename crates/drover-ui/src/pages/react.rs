//! `/ui/alerts`, `/ui/hammers` and `/ui/runbook/NAME`. The alert and
//! hammer data is `drover-react`'s, which this crate does not link: the
//! server's handlers fill these rows. An alert's "Silence…" link is
//! `/ui/alerts?silence=MATCHERS#new-silence`: the silence form filled in
//! with the alert's labels, one matcher a line.

use askama::Template;

use drover_proto::paths;

use crate::chrome::Chrome;

/// An alert, pending or firing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertRow {
    /// Its id (for the acknowledge form).
    pub id: String,
    /// The rule.
    pub name: String,
    /// `pending` or `firing`.
    pub state: String,
    /// `critical`, `warning`, …
    pub severity: String,
    /// Its labels other than `alertname` and `severity`: `node=web1 job=api`.
    pub summary: String,
    /// Since when, as an age.
    pub since: String,
    /// Where its runbook is (a URL, or the runbook page), if it has one.
    pub runbook: Option<String>,
    /// Who acknowledged it, and when.
    pub acknowledged_by: String,
    /// Whether it was acknowledged.
    pub acknowledged: bool,
    /// The silence covering it, if any.
    pub silenced_by: String,
    /// Matchers of its labels (`alertname="tmp-full"`), to silence it.
    pub matchers: Vec<String>,
}

impl AlertRow {
    /// The link to a rule's runbook: the runbook itself when it is a URL,
    /// the runbook page when it is a file of the site.
    pub fn runbook_href(rule: &str, runbook: &str) -> String {
        if runbook.starts_with("https://") || runbook.starts_with("http://") {
            runbook.to_owned()
        } else {
            paths::fill(paths::UI_RUNBOOK, &[rule])
        }
    }

    /// The alert page with the silence form filled in for this alert.
    pub fn silence_href(&self) -> String {
        format!("{}{}#new-silence", paths::UI_ALERTS, crate::format::query(&[("silence", &self.matchers.join("\n"))]))
    }
}

/// A silence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SilenceRow {
    /// Its id.
    pub id: String,
    /// Its matchers, as written.
    pub matchers: String,
    /// When it ends, as an age.
    pub ends: String,
    /// Who made it.
    pub author: String,
    /// Why.
    pub comment: String,
}

impl SilenceRow {
    /// Where its expire form posts.
    pub fn expire_action(&self) -> String {
        paths::fill(paths::UI_SILENCE_EXPIRE, &[&self.id])
    }
}

/// An alert that fired often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopRow {
    /// The rule.
    pub name: String,
    /// Firings in the window.
    pub count: u64,
    /// The last, as an age.
    pub last: String,
}

/// `/ui/alerts`.
#[derive(Debug, Template)]
#[template(path = "alerts.html")]
pub struct AlertsPage {
    /// The frame.
    pub chrome: Chrome,
    /// Pending and firing alerts, firing first.
    pub alerts: Vec<AlertRow>,
    /// Silences.
    pub silences: Vec<SilenceRow>,
    /// What fired most in the last 24 h.
    pub top: Vec<TopRow>,
    /// Whether the caller may acknowledge (site `apply`): else no button.
    pub can_ack: bool,
    /// Whether the caller may silence and expire silences (site `apply`,
    /// as `POST /v1/silences`): else no form and no buttons.
    pub can_silence: bool,
    /// The silence form's matchers, one a line (from `?silence=`).
    pub silence_matchers: String,
    /// The outcome of the last action, if any.
    pub notice: Option<String>,
}

impl AlertsPage {
    /// Where the acknowledge form posts.
    pub fn ack_action(&self) -> &'static str {
        paths::UI_ALERT_ACK
    }

    /// Where the silence form posts.
    pub fn silence_action(&self) -> &'static str {
        paths::UI_ALERT_SILENCE
    }
}

/// A hammer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HammerRow {
    /// Its name.
    pub name: String,
    /// What triggers it.
    pub trigger: String,
    /// What it does.
    pub action: String,
    /// `auto`, `approve` or `dry-run`.
    pub mode: String,
    /// Whether it is paused.
    pub paused: bool,
    /// `2 / 5`: runs in the last hour of its per-hour limit.
    pub runs_last_hour: String,
    /// Runs waiting for approval.
    pub waiting: u32,
    /// The last run, as an age.
    pub last_run: String,
}

/// A hammer run, or a refused trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRow {
    /// The run's number (0 for a refused trigger).
    pub id: u64,
    /// The hammer.
    pub hammer: String,
    /// On what.
    pub target: String,
    /// `awaiting_approval`, `running`, `succeeded`, …, or `refused`.
    pub state: String,
    /// When, as an age.
    pub when: String,
    /// Why it was triggered, or why refused; what the action reported.
    pub detail: String,
    /// Who approved or denied it.
    pub decided_by: String,
}

impl RunRow {
    /// Whether it waits for a person.
    pub fn awaits_approval(&self) -> bool {
        self.state == "awaiting_approval"
    }

    /// Where its approve form posts.
    pub fn approve_action(&self) -> String {
        paths::fill(paths::UI_HAMMER_RUN_APPROVE, &[&self.id.to_string()])
    }

    /// Where its deny form posts.
    pub fn deny_action(&self) -> String {
        paths::fill(paths::UI_HAMMER_RUN_DENY, &[&self.id.to_string()])
    }
}

/// `/ui/hammers`.
#[derive(Debug, Template)]
#[template(path = "hammers.html")]
pub struct HammersPage {
    /// The frame.
    pub chrome: Chrome,
    /// The hammers of the applied site.
    pub hammers: Vec<HammerRow>,
    /// Runs waiting for approval.
    pub awaiting: Vec<RunRow>,
    /// Runs and refusals, newest first.
    pub history: Vec<RunRow>,
    /// Whether the caller may approve (site `hammer-approve`): else no buttons.
    pub can_decide: bool,
    /// The outcome of the last action, if any.
    pub notice: Option<String>,
}

/// `/ui/runbook/NAME`.
#[derive(Debug, Template)]
#[template(path = "runbook.html")]
pub struct RunbookPage {
    /// The frame.
    pub chrome: Chrome,
    /// The alert rule or hammer.
    pub name: String,
    /// The runbook as written (a file of the site, or a URL).
    pub runbook: String,
    /// Its Markdown as written (a URL runbook has none: a link is shown).
    pub markdown: Option<String>,
}

impl RunbookPage {
    /// The Markdown as HTML ([`crate::markdown::to_html`]: raw HTML and
    /// script links in it are shown, not run).
    pub fn html(&self) -> Option<String> {
        self.markdown.as_deref().map(crate::markdown::to_html)
    }
}
