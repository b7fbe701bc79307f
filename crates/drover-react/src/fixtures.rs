//! Values for tests of this crate and of the crates above it (the
//! `test-support` feature): build them here once instead of in every
//! crate's tests.

use std::collections::BTreeMap;

use drover_types::Timestamp;

use crate::delivery::{Notification, NotificationKind};
use crate::matcher::Labels;
use crate::schema::Severity;

/// A firing notification for tests.
pub fn tmp_full() -> Notification {
    Notification {
        kind: NotificationKind::Firing,
        name: "tmp-full".to_owned(),
        alert_id: Some("tmp-full{node=\"batch07\"}".to_owned()),
        severity: Severity::Warning,
        labels: Labels::from([
            ("alertname".to_owned(), "tmp-full".to_owned()),
            ("node".to_owned(), "batch07".to_owned()),
            ("severity".to_owned(), "warning".to_owned()),
        ]),
        annotations: BTreeMap::from([("description".to_owned(), "/tmp is \"full\"".to_owned())]),
        summary: "tmp-full is firing on node batch07".to_owned(),
        runbook: Some("https://ops.example.org/runbooks/tmp-full".to_owned()),
        starts_at: Timestamp::from_millis(1_700_000_000_000),
        ends_at: None,
        generator_url: None,
        value: Some(97.5),
    }
}
