//! What every page shares: the header (navigation, who is logged in, the
//! logout form), the CSRF token its forms carry, and the time of rendering.

use drover_proto::paths;
use drover_types::Timestamp;

/// The dashboard's sections, in the order of the navigation bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// The overview.
    Overview,
    /// Nodes and a node.
    Nodes,
    /// Jobs, a job, an allocation.
    Jobs,
    /// Log search.
    Logs,
    /// Alerts.
    Alerts,
    /// Hammers.
    Hammers,
    /// Exec.
    Exec,
    /// The login page (not in the navigation).
    Login,
}

/// One link of the navigation bar.
#[derive(Clone, Debug)]
pub struct NavLink {
    /// Where it goes.
    pub href: &'static str,
    /// What it says.
    pub label: &'static str,
    /// Whether it is the page shown.
    pub current: bool,
}

/// The frame of a page.
#[derive(Clone, Debug)]
pub struct Chrome {
    /// The page's title (also the `<title>`).
    pub title: String,
    /// Which section the page belongs to.
    pub section: Section,
    /// Who the caller is (the token's name, `anonymous`).
    pub user: String,
    /// Whether the caller logged in (then a logout button is shown).
    pub logged_in: bool,
    /// The CSRF token the page's forms carry (see [`crate::session`]).
    pub csrf: String,
    /// When the page was rendered.
    pub now: Timestamp,
    /// Seconds between live refreshes of the page's content (0: none).
    pub refresh_seconds: u32,
}

impl Chrome {
    /// A frame for `title` in `section`, rendered at `now`.
    pub fn new(title: impl Into<String>, section: Section, now: Timestamp) -> Self {
        Chrome {
            title: title.into(),
            section,
            user: "anonymous".to_owned(),
            logged_in: false,
            csrf: String::new(),
            now,
            refresh_seconds: 0,
        }
    }

    /// The navigation bar.
    pub fn nav(&self) -> Vec<NavLink> {
        [
            (paths::UI, "Overview", Section::Overview),
            (paths::UI_NODES, "Nodes", Section::Nodes),
            (paths::UI_JOBS, "Jobs", Section::Jobs),
            (paths::UI_LOGS, "Logs", Section::Logs),
            (paths::UI_ALERTS, "Alerts", Section::Alerts),
            (paths::UI_HAMMERS, "Hammers", Section::Hammers),
            (paths::UI_EXEC, "Exec", Section::Exec),
        ]
        .into_iter()
        .map(|(href, label, section)| NavLink { href, label, current: section == self.section })
        .collect()
    }

    /// The stylesheet's URL (with the build's version, so a new binary's
    /// stylesheet is never taken from a cache).
    pub fn stylesheet(&self) -> String {
        format!("{}?v={}", paths::fill(paths::UI_ASSET, &["style.css"]), env!("CARGO_PKG_VERSION"))
    }

    /// The script's URL.
    pub fn script(&self) -> String {
        format!("{}?v={}", paths::fill(paths::UI_ASSET, &["dashboard.js"]), env!("CARGO_PKG_VERSION"))
    }

    /// When the page was rendered, as a UTC time.
    pub fn rendered_at(&self) -> String {
        crate::format::time(self.now)
    }

    /// Where the logout form posts.
    pub fn logout(&self) -> &'static str {
        paths::UI_LOGOUT
    }
}
