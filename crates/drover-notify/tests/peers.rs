//! Deliveries to real peers: a local HTTP server (webhooks), `aiosmtpd`
//! (e-mail) and a real Alertmanager, which also sends its webhook back to
//! drover's parser.
//!
//! The peers come from Debian (`prometheus-alertmanager`,
//! `python3-aiosmtpd`), which `scripts/install-test-deps` installs; a test
//! whose peer is missing fails under CI and prints `SKIPPED: …` elsewhere
//! (`drover_golden::needs`). Every peer process is killed by a guard when
//! its test ends.
//!
//! `DROVER_CAPTURE_AM_PAYLOAD=FILE` writes the payloads the Alertmanager
//! sent to FILE (firing) and FILE.resolved: how
//! `tests/samples/alertmanager-webhook-v4*.json` were made.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use drover_golden::needs;
use drover_notify::{
    AlertmanagerConfig, DELIVERY_HEADER, DeliveryStatus, Dispatcher, DispatcherOptions, EmailConfig, Notification,
    NotificationKind, Notifier, NotifierConfig, ReceivedStatus, RetryPolicy, WebhookConfig, parse_alert_template,
    parse_alertmanager_webhook,
};
use drover_types::Timestamp;

const TEST_LIMIT: Duration = Duration::from_secs(30);
/// Debian's Alertmanager (`prometheus-alertmanager`).
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
/// Debian's Python, which `python3-aiosmtpd` installs the SMTP server for.
const PYTHON: &str = "/usr/bin/python3";

// ----- support -----

/// Kills and reaps a peer process when dropped.
struct PeerGuard {
    name: &'static str,
    child: Child,
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("stopped {}", self.name);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on port {port} after 10 s");
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        max_age: Some(Duration::from_secs(20)),
        jitter: 0.2,
    }
}

fn notifier(name: &str, channel: Notifier, retry: RetryPolicy) -> NotifierConfig {
    let mut config = NotifierConfig::new(name, channel);
    config.retry = retry;
    config.timeout = Duration::from_secs(5);
    config
}

/// The shared firing fixture, fresh (an Alertmanager ignores old alerts)
/// and with a generator URL.
fn tmp_full(kind: NotificationKind) -> Notification {
    Notification {
        kind,
        starts_at: Timestamp::now(),
        generator_url: Some("http://127.0.0.1:4646/ui/alerts".to_owned()),
        ..drover_react::fixtures::tmp_full()
    }
}

/// What a test HTTP server received.
#[derive(Clone, Debug)]
struct Received {
    body: String,
    headers: HeaderMap,
}

#[derive(Clone, Default)]
struct Hook {
    /// Requests answered 503 before the first 200; `u32::MAX` never
    /// succeeds.
    failures_first: u32,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn hook(State(hook): State<Hook>, headers: HeaderMap, body: String) -> StatusCode {
    let mut received = hook.received.lock().unwrap();
    received.push(Received { body, headers });
    if received.len() as u64 <= u64::from(hook.failures_first) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

/// An HTTP server answering POST /hook; answers its address.
async fn serve_hook(hook_state: Hook) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = Router::new().route("/hook", post(hook)).with_state(hook_state);
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// A hook server and a dispatcher with one webhook notifier (`ops-chat`)
/// posting to it, trying each delivery up to `attempts` times.
async fn hook_dispatcher(hook_state: &Hook, attempts: u32) -> (SocketAddr, Dispatcher) {
    let address = serve_hook(hook_state.clone()).await;
    let notifiers = vec![notifier("ops-chat", slack_webhook(address), fast_retry(attempts))];
    (address, Dispatcher::start(notifiers, DispatcherOptions::default()).await.unwrap())
}

fn slack_webhook(address: SocketAddr) -> Notifier {
    Notifier::Webhook(WebhookConfig {
        url: format!("http://{address}/hook"),
        body: Some(
            parse_alert_template(
                r#"{"text": "[{{alert.status}}] {{alert.summary}}: {{alert.annotations.description}} runbook: {{alert.runbook}}"}"#,
            )
            .unwrap(),
        ),
        headers: BTreeMap::from([("X-Site".to_owned(), "test".to_owned())]),
    })
}

async fn within_limit<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_LIMIT, test).await.expect("the test took longer than 30 s");
}

// ----- webhooks -----

#[tokio::test]
async fn webhook_receives_the_templated_json() {
    within_limit(async {
        let hook_state = Hook::default();
        let (_, dispatcher) = hook_dispatcher(&hook_state, 3).await;
        let id = dispatcher.send("ops-chat", tmp_full(NotificationKind::Firing)).await;
        let record = dispatcher.wait_finished(&id).await.unwrap();
        assert_eq!(record.status, DeliveryStatus::Delivered, "{record:?}");
        assert_eq!(record.attempts, 1);
        let received = hook_state.received.lock().unwrap().clone();
        assert_eq!(received.len(), 1);
        let body: serde_json::Value = serde_json::from_str(&received[0].body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"text": "[firing] tmp-full is firing on node batch07: /tmp is \"full\" runbook: https://ops.example.org/runbooks/tmp-full"})
        );
        assert_eq!(received[0].headers["content-type"], "application/json");
        assert_eq!(received[0].headers["x-site"], "test");
        assert_eq!(received[0].headers[DELIVERY_HEADER.to_ascii_lowercase().as_str()], id.as_str());
        dispatcher.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn webhook_that_fails_twice_gets_it_the_third_time() {
    within_limit(async {
        let hook_state = Hook { failures_first: 2, ..Hook::default() };
        let (_, dispatcher) = hook_dispatcher(&hook_state, 5).await;
        let id = dispatcher.send("ops-chat", tmp_full(NotificationKind::Firing)).await;
        let record = dispatcher.wait_finished(&id).await.unwrap();
        assert_eq!(record.status, DeliveryStatus::Delivered, "{record:?}");
        assert_eq!(record.attempts, 3);
        assert!(record.last_error.as_deref().unwrap().contains("503 Service Unavailable"), "{record:?}");
        let received = hook_state.received.lock().unwrap().clone();
        assert_eq!(received.len(), 3);
        // Every attempt carries the same delivery id, for de-duplication.
        assert!(received.iter().all(|request| request.headers[DELIVERY_HEADER] == id.as_str()));
        dispatcher.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn webhook_that_always_fails_ends_failed_with_its_error() {
    within_limit(async {
        let hook_state = Hook { failures_first: u32::MAX, ..Hook::default() };
        let (address, dispatcher) = hook_dispatcher(&hook_state, 3).await;
        let id = dispatcher.send("ops-chat", tmp_full(NotificationKind::Firing)).await;
        let record = dispatcher.wait_finished(&id).await.unwrap();
        assert_eq!(record.status, DeliveryStatus::Failed, "{record:?}");
        assert_eq!(record.attempts, 3);
        assert!(record.failed_at.is_some());
        let error = record.last_error.as_deref().unwrap();
        assert!(error.contains(&format!("POST http://{address}/hook: answered 503 Service Unavailable")), "{error}");
        assert!(record.failure.as_deref().unwrap().starts_with("gave up after 3 attempts: "), "{record:?}");
        assert_eq!(hook_state.received.lock().unwrap().len(), 3);
        // The failure stays visible in the listing.
        let listed = dispatcher.deliveries();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].status, DeliveryStatus::Failed);
        // A failed delivery can be queued again by hand, with fresh attempts.
        dispatcher.retry(&id).await.unwrap();
        let again = dispatcher.wait_finished(&id).await.unwrap();
        assert_eq!((again.status, again.attempts), (DeliveryStatus::Failed, 3));
        assert_eq!(hook_state.received.lock().unwrap().len(), 6);
        dispatcher.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn concurrency_per_notifier_is_bounded() {
    within_limit(async {
        // A server that holds each request 200 ms and counts how many it
        // holds at once.
        #[derive(Clone, Default)]
        struct Gauge {
            now: Arc<Mutex<(u32, u32)>>,
        }
        async fn slow(State(gauge): State<Gauge>) -> StatusCode {
            {
                let mut counts = gauge.now.lock().unwrap();
                counts.0 += 1;
                counts.1 = counts.1.max(counts.0);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            gauge.now.lock().unwrap().0 -= 1;
            StatusCode::NO_CONTENT
        }
        let gauge = Gauge::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Router::new().route("/hook", post(slow)).with_state(gauge.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let mut config = notifier(
            "ops-chat",
            Notifier::Webhook(WebhookConfig {
                url: format!("http://{address}/hook"),
                body: None,
                headers: BTreeMap::new(),
            }),
            fast_retry(1),
        );
        config.max_concurrent = 2;
        let dispatcher = Dispatcher::start(vec![config], DispatcherOptions::default()).await.unwrap();
        let mut ids = Vec::new();
        for _ in 0..6 {
            ids.push(dispatcher.send("ops-chat", tmp_full(NotificationKind::Firing)).await);
        }
        for id in &ids {
            assert_eq!(dispatcher.wait_finished(id).await.unwrap().status, DeliveryStatus::Delivered);
        }
        assert_eq!(gauge.now.lock().unwrap().1, 2);
        dispatcher.shutdown().await;
    })
    .await;
}

// ----- the outbox -----

#[tokio::test]
async fn queued_notifications_survive_a_restart() {
    within_limit(async {
        let dir = tempfile::tempdir().unwrap();
        let options = DispatcherOptions { outbox_dir: Some(dir.path().to_owned()), ..DispatcherOptions::default() };
        let mut one_second = fast_retry(5);
        one_second.initial_backoff = Duration::from_secs(1);
        one_second.max_backoff = Duration::from_secs(1);
        one_second.jitter = 0.0;
        // Nothing listens: the first attempt fails, the retry is due in 1 s,
        // and the dispatcher stops before that.
        let down = format!("127.0.0.1:{}", free_port()).parse::<SocketAddr>().unwrap();
        let first = Dispatcher::start(vec![notifier("ops-chat", slack_webhook(down), one_second)], options.clone())
            .await
            .unwrap();
        let id = first.send("ops-chat", tmp_full(NotificationKind::Firing)).await;
        let mut polls = 0;
        while !first.delivery(&id).is_some_and(|record| record.attempts == 1 && record.status == DeliveryStatus::Queued)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
            polls += 1;
            assert!(polls < 500, "{:?}", first.delivery(&id));
        }
        first.shutdown().await;
        drop(first);
        let outbox_file = dir.path().join(drover_notify::outbox::OUTBOX_FILE);
        assert!(std::fs::read_to_string(&outbox_file).unwrap().contains(id.as_str()));

        // The restarted dispatcher (the site now points at a server that
        // answers) resumes the delivery when its retry is due.
        let hook_state = Hook::default();
        let up = serve_hook(hook_state.clone()).await;
        let second = Dispatcher::start(vec![notifier("ops-chat", slack_webhook(up), one_second)], options.clone())
            .await
            .unwrap();
        let resumed = second.delivery(&id).unwrap();
        assert_eq!(resumed.status, DeliveryStatus::Queued);
        assert_eq!(resumed.attempts, 1);
        assert!(resumed.last_error.as_deref().unwrap().contains(&format!("POST http://{down}/hook")), "{resumed:?}");
        let record = second.wait_finished(&id).await.unwrap();
        assert_eq!(record.status, DeliveryStatus::Delivered, "{record:?}");
        assert_eq!(record.attempts, 2);
        second.shutdown().await;
        drop(second);

        // Delivered is on disk too: a third start does not send it again.
        let third =
            Dispatcher::start(vec![notifier("ops-chat", slack_webhook(up), one_second)], options).await.unwrap();
        assert_eq!(third.delivery(&id).unwrap().status, DeliveryStatus::Delivered);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(hook_state.received.lock().unwrap().len(), 1);
        third.shutdown().await;
    })
    .await;
}

// ----- e-mail -----

#[tokio::test]
async fn email_arrives_at_a_real_smtp_server() {
    if !needs::are_met([needs::python_module(PYTHON, "aiosmtpd", "python3-aiosmtpd")]) {
        return;
    }
    within_limit(async {
        let scratch = tempfile::tempdir().unwrap();
        // The Mailbox handler makes the maildir's tmp/new/cur only when the
        // folder does not exist yet.
        let maildir = scratch.path().join("mail");
        let port = free_port();
        let child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let _smtpd = PeerGuard { name: "aiosmtpd", child };
        wait_for_port(port).await;

        let email = Notifier::Email(EmailConfig {
            smtp: format!("127.0.0.1:{port}"),
            from: "drover@example.org".to_owned(),
            to: vec!["ops@example.org".to_owned(), "oncall@example.org".to_owned()],
            subject: parse_alert_template("[drover] {{alert.status}}: {{alert.name}} on {{alert.labels.node}}")
                .unwrap(),
            body: None,
            auth: None,
            hello_name: Some("drover.test".to_owned()),
        });
        let dispatcher =
            Dispatcher::start(vec![notifier("ops-mail", email, fast_retry(3))], DispatcherOptions::default())
                .await
                .unwrap();
        let mut notification = tmp_full(NotificationKind::Firing);
        notification.annotations.insert("note".to_owned(), ".a line starting with a dot".to_owned());
        let id = dispatcher.send("ops-mail", notification).await;
        let record = dispatcher.wait_finished(&id).await.unwrap();
        assert_eq!(record.status, DeliveryStatus::Delivered, "{record:?}");

        let new_mail = maildir.join("new");
        let mut messages = Vec::new();
        for _ in 0..100 {
            messages = std::fs::read_dir(&new_mail).map(|entries| entries.flatten().collect()).unwrap_or_default();
            if !messages.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(messages.len(), 1, "one message in {}", new_mail.display());
        let message = std::fs::read_to_string(messages[0].path()).unwrap();
        assert!(message.contains("Subject: [drover] firing: tmp-full on batch07"), "{message}");
        assert!(message.contains("To: ops@example.org, oncall@example.org"), "{message}");
        assert!(message.contains(&format!("Message-ID: <{id}@drover>")), "{message}");
        assert!(message.contains("Runbook: https://ops.example.org/runbooks/tmp-full"), "{message}");
        // Dot-stuffing was undone by the server: the line has one dot.
        assert!(message.contains("\n  note = .a line starting with a dot"), "{message}");
        dispatcher.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn email_to_a_relay_that_is_down_fails_visibly() {
    within_limit(async {
        let email = Notifier::Email(EmailConfig {
            smtp: format!("127.0.0.1:{}", free_port()),
            from: "drover@example.org".to_owned(),
            to: vec!["ops@example.org".to_owned()],
            subject: parse_alert_template(drover_notify::DEFAULT_EMAIL_SUBJECT).unwrap(),
            body: None,
            auth: None,
            hello_name: None,
        });
        let dispatcher =
            Dispatcher::start(vec![notifier("ops-mail", email, fast_retry(2))], DispatcherOptions::default())
                .await
                .unwrap();
        let id = dispatcher.send("ops-mail", tmp_full(NotificationKind::Firing)).await;
        let record = dispatcher.wait_finished(&id).await.unwrap();
        assert_eq!(record.status, DeliveryStatus::Failed);
        assert_eq!(record.attempts, 2);
        assert!(record.last_error.as_deref().unwrap().contains("cannot connect"), "{record:?}");
        dispatcher.shutdown().await;
    })
    .await;
}

// ----- Alertmanager -----

#[derive(Clone, Default)]
struct AmHook {
    payloads: Arc<Mutex<Vec<String>>>,
}

async fn am_hook(State(hook): State<AmHook>, body: String) -> StatusCode {
    hook.payloads.lock().unwrap().push(body);
    StatusCode::OK
}

async fn wait_for_payload(hook: &AmHook, count: usize) -> Vec<String> {
    for _ in 0..300 {
        let payloads = hook.payloads.lock().unwrap().clone();
        if payloads.len() >= count {
            return payloads;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the Alertmanager sent fewer than {count} webhook(s) within 15 s");
}

fn start_alertmanager(dir: &Path, port: u16, webhook_url: &str) -> PeerGuard {
    let config = format!(
        "route:\n  receiver: drover\n  group_by: ['alertname']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n\
         receivers:\n  - name: drover\n    webhook_configs:\n      - url: '{webhook_url}'\n        send_resolved: true\n"
    );
    let config_file: PathBuf = dir.join("am.yml");
    std::fs::write(&config_file, config).unwrap();
    let child = Command::new(ALERTMANAGER)
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!("--storage.path={}", dir.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    PeerGuard { name: "alertmanager", child }
}

#[tokio::test]
async fn alertmanager_takes_the_alert_and_sends_its_webhook_back() {
    if !needs::are_met([needs::program(ALERTMANAGER, "prometheus-alertmanager")]) {
        return;
    }
    within_limit(async {
        let hook_state = AmHook::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hook_address = listener.local_addr().unwrap();
        let router = Router::new().route("/alertmanager", post(am_hook)).with_state(hook_state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });

        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let _alertmanager = start_alertmanager(dir.path(), port, &format!("http://{hook_address}/alertmanager"));
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let mut ready = false;
        for _ in 0..200 {
            if http.get(format!("{base}/-/ready")).send().await.is_ok_and(|response| response.status().is_success()) {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "the Alertmanager is not ready after 10 s");

        let am = Notifier::Alertmanager(AlertmanagerConfig {
            url: base.clone(),
            headers: BTreeMap::new(),
            firing_ttl: Some(Duration::from_secs(3600)),
        });
        let dispatcher = Dispatcher::start(vec![notifier("site-am", am, fast_retry(3))], DispatcherOptions::default())
            .await
            .unwrap();
        let firing = tmp_full(NotificationKind::Firing);
        let id = dispatcher.send("site-am", firing.clone()).await;
        let record = dispatcher.wait_finished(&id).await.unwrap();
        assert_eq!(record.status, DeliveryStatus::Delivered, "{record:?}");

        // (a) The Alertmanager lists it.
        let listed: serde_json::Value =
            http.get(format!("{base}/api/v2/alerts")).send().await.unwrap().json().await.unwrap();
        let alerts = listed.as_array().unwrap();
        assert_eq!(alerts.len(), 1, "{listed}");
        assert_eq!(alerts[0]["labels"]["alertname"], "tmp-full");
        assert_eq!(alerts[0]["labels"]["node"], "batch07");
        assert_eq!(alerts[0]["annotations"]["runbook_url"], "https://ops.example.org/runbooks/tmp-full");
        assert_eq!(alerts[0]["generatorURL"], "http://127.0.0.1:4646/ui/alerts");
        assert_eq!(alerts[0]["status"]["state"], "active");

        // (b) Its webhook comes back and parses.
        let payloads = wait_for_payload(&hook_state, 1).await;
        if let Some(path) = std::env::var_os("DROVER_CAPTURE_AM_PAYLOAD") {
            std::fs::write(path, format!("{}\n", payloads[0].trim_end())).unwrap();
        }
        let payload = parse_alertmanager_webhook(payloads[0].as_bytes()).unwrap();
        assert_eq!(payload.receiver, "drover");
        assert_eq!(payload.status, ReceivedStatus::Firing);
        assert_eq!(payload.alerts.len(), 1);
        let alert = &payload.alerts[0];
        assert_eq!(alert.name(), "tmp-full");
        assert_eq!(alert.labels["node"], "batch07");
        assert_eq!(alert.annotations["runbook_url"], "https://ops.example.org/runbooks/tmp-full");
        // A firing alert's end is not passed on (Go's zero time).
        assert_eq!(alert.ends_at, None, "{alert:?}");
        assert_eq!(alert.starts_at.as_millis() / 1000, firing.starts_at.as_millis() / 1000);
        assert_eq!(alert.generator_url, "http://127.0.0.1:4646/ui/alerts");
        assert!(!alert.fingerprint.is_empty());

        // Resolving it in drover resolves it there, and that comes back too.
        let mut resolved = firing;
        resolved.kind = NotificationKind::Resolved;
        resolved.ends_at = Some(Timestamp::now());
        let id = dispatcher.send("site-am", resolved).await;
        assert_eq!(dispatcher.wait_finished(&id).await.unwrap().status, DeliveryStatus::Delivered);
        let payloads = wait_for_payload(&hook_state, 2).await;
        let payload = parse_alertmanager_webhook(payloads[1].as_bytes()).unwrap();
        assert_eq!(payload.status, ReceivedStatus::Resolved, "{}", payloads[1]);
        assert_eq!(payload.alerts[0].status, ReceivedStatus::Resolved);
        assert!(payload.alerts[0].ends_at.is_some(), "{}", payloads[1]);
        if let Some(path) = std::env::var_os("DROVER_CAPTURE_AM_PAYLOAD") {
            let mut path = PathBuf::from(path).into_os_string();
            path.push(".resolved");
            std::fs::write(path, format!("{}\n", payloads[1].trim_end())).unwrap();
        }
        dispatcher.shutdown().await;
    })
    .await;
}
