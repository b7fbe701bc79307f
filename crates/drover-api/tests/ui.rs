//! The dashboard over HTTP against a real server (`router(server)` with
//! `oneshot`): pages are HTML readable without JavaScript, bad input reads
//! as the CLI's messages, a form post without its CSRF token is refused
//! and audited, and with ACLs on the session cookie is the token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

use drover_server::security::{SecurityMode, TlsSettings};
use drover_server::{Server, ServerConfig};

/// A response's status, headers and body text.
struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(server: &Server, request: Request<Body>) -> Page {
    let response = drover_api::router(server.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Page { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, format!("drover_session={cookie}"));
    }
    request.body(Body::empty()).unwrap()
}

fn post_form(path: &str, cookie: Option<&str>, form: &str) -> Request<Body> {
    let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, format!("drover_session={cookie}"));
    }
    request.body(Body::from(form.to_owned())).unwrap()
}

/// The value of the session cookie a response sets.
fn session_cookie(page: &Page) -> Option<String> {
    let set = page.headers.get(header::SET_COOKIE)?.to_str().ok()?;
    set.strip_prefix("drover_session=")?.split(';').next().map(str::to_owned)
}

/// The CSRF token the page's forms carry (also in its head).
fn csrf_of(html: &str) -> String {
    let marker = r#"<meta name="drover-csrf" content=""#;
    let at = html.find(marker).expect("a page with a CSRF token") + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
}

async fn audit_events(server: &Server) -> Vec<drover_types::acl::AuditEvent> {
    let filter = drover_server::audit::AuditFilter { since: None, by: None, kind: None, outcome: None, limit: 1000 };
    server.audit_events(&filter).await.unwrap()
}

/// Waits until an audit event satisfies `found`.
async fn wait_for_audit(server: &Server, found: impl Fn(&drover_types::acl::AuditEvent) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = audit_events(server).await;
        if events.iter().any(&found) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no such audit event in {events:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_root_leads_to_the_overview_which_is_html_with_a_session_cookie() {
    let (server, _dir) = support::start_server().await;
    let root = send(&server, get("/", None)).await;
    assert!(root.status.is_redirection(), "{}", root.status);
    assert_eq!(root.headers[header::LOCATION], "/ui/");

    let overview = send(&server, get("/ui/", None)).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    assert!(overview.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(overview.body.contains("Needs a human") && overview.body.contains("Servers"), "{}", overview.body);
    let set_cookie = overview.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "no TLS, no Secure flag: {set_cookie}");

    let css = send(&server, get("/ui/assets/style.css", None)).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.body.contains("prefers-color-scheme: dark"));
    assert_eq!(send(&server, get("/ui/assets/secret.txt", None)).await.status, StatusCode::NOT_FOUND);
    for path in ["/ui/nodes", "/ui/jobs", "/ui/logs", "/ui/alerts", "/ui/hammers"] {
        let page = send(&server, get(path, None)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
    }
    let missing = send(&server, get("/ui/job/nosuch", None)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.body.contains("job &#34;nosuch&#34; not found") || missing.body.contains("nosuch"),
        "{}",
        missing.body
    );
}

#[tokio::test]
async fn a_broken_filter_and_an_unbalanced_query_read_as_the_cli_messages() {
    let (server, _dir) = support::start_server().await;
    let nodes = send(&server, get("/ui/nodes?filter=hostgroup%20%3D%3D", None)).await;
    assert_eq!(nodes.status, StatusCode::OK);
    assert!(nodes.body.contains("bad filter:") && nodes.body.contains("see docs/nodes.md"), "{}", nodes.body);
    let logs = send(&server, get("/ui/logs?q=%28hello", None)).await;
    assert_eq!(logs.status, StatusCode::OK);
    assert!(logs.body.contains("unbalanced parenthesis at column 1"), "{}", logs.body);
}

#[tokio::test]
async fn a_form_post_without_its_csrf_token_is_refused_and_audited() {
    let (server, _dir) = support::start_server().await;
    let page = send(&server, get("/ui/hammers", None)).await;
    let cookie = session_cookie(&page).expect("a session cookie");
    let csrf = csrf_of(&page.body);

    // Forged: no token, a wrong token, the right token with another cookie.
    for (cookie, form) in [
        (Some(cookie.as_str()), String::new()),
        (Some(cookie.as_str()), "csrf=0123".to_owned()),
        (Some("someone-else"), format!("csrf={csrf}")),
        (None, format!("csrf={csrf}")),
    ] {
        let refused = send(&server, post_form("/ui/hammers/run/1/approve", cookie, &form)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{form}: {}", refused.body);
        assert!(refused.body.contains("CSRF token is missing or wrong"), "{}", refused.body);
    }
    wait_for_audit(&server, |event| {
        event.action == "hammer.approve"
            && matches!(&event.outcome, drover_types::acl::AuditOutcome::Refused(why) if why.contains("CSRF"))
    })
    .await;

    // With its token the post reaches the API's handler, which answers
    // as it does to the CLI.
    let unknown = send(&server, post_form("/ui/hammers/run/999/approve", Some(&cookie), &format!("csrf={csrf}"))).await;
    assert_ne!(unknown.status, StatusCode::FORBIDDEN, "{}", unknown.body);
    assert!(unknown.body.contains("999"), "{}", unknown.body);
}

#[tokio::test]
async fn with_acls_the_session_cookie_is_the_token_and_a_bad_one_asks_to_log_in_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path().join("server"), "127.0.0.1:1".to_owned());
    config.security = SecurityMode::Secure(TlsSettings {
        ca_cert: None,
        cert: None,
        key: None,
        ca_key: None,
        join_token: None,
        validity: Duration::from_secs(86_400),
    });
    let server = Server::start(config).await.unwrap();
    for _ in 0..100 {
        if server.status().is_leader && server.consistent_state().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bootstrap = send(&server, Request::post("/v1/acl/bootstrap").body(Body::empty()).unwrap()).await;
    assert_eq!(bootstrap.status, StatusCode::OK, "{}", bootstrap.body);
    let secret =
        serde_json::from_str::<serde_json::Value>(&bootstrap.body).unwrap()["secret"].as_str().unwrap().to_owned();

    // No token: to the login form, coming back afterwards.
    let anonymous = send(&server, get("/ui/nodes?filter=x", None)).await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert_eq!(anonymous.headers[header::LOCATION], "/ui/login?next=%2Fui%2Fnodes%3Ffilter%3Dx");

    // A wrong token: refused with the reason, and audited.
    let wrong = send(&server, post_form("/ui/login", None, "token=nonsense&next=%2Fui%2F")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    assert!(wrong.body.contains("error:"), "{}", wrong.body);
    wait_for_audit(&server, |event| {
        event.action == "ui.login" && matches!(event.outcome, drover_types::acl::AuditOutcome::Refused(_))
    })
    .await;

    // The right one: a Secure, HttpOnly, SameSite=Strict cookie, and back.
    let login =
        send(&server, post_form("/ui/login", None, &format!("token={secret}&next=%2Fui%2Fnodes%3Ffilter%3Dx"))).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.body);
    assert_eq!(login.headers[header::LOCATION], "/ui/nodes?filter=x");
    let set_cookie = login.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.contains("Secure") && set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    assert_eq!(session_cookie(&login).as_deref(), Some(secret.as_str()));
    // Another site may not send the visitor back anywhere but the dashboard.
    let elsewhere =
        send(&server, post_form("/ui/login", None, &format!("token={secret}&next=https://evil.example/"))).await;
    assert_eq!(elsewhere.headers[header::LOCATION], "/ui/");

    let overview = send(&server, get("/ui/", Some(&secret))).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    assert!(overview.body.contains("Log out"), "{}", overview.body);
    // The cookie is not a token for the JSON API.
    let api = send(&server, get("/v1/nodes", Some(&secret))).await;
    assert_eq!(api.status, StatusCode::FORBIDDEN, "{}", api.body);

    // A cookie of a token this cluster does not know: log in again, told why.
    let stale = send(&server, get("/ui/", Some("drover-not-a-real-token"))).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    assert!(stale.body.contains("Log in to drover") && stale.body.contains("error:"), "{}", stale.body);
    assert!(stale.headers[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
}

/// The router serves every dashboard route of the URL space
/// (`drover_proto::paths::UI_ALL`). Only a 404's body is read: the live
/// tail never ends its body.
#[tokio::test]
async fn every_dashboard_route_is_served() {
    let (server, _dir) = support::start_server().await;
    for template in drover_proto::paths::UI_ALL {
        let path = drover_proto::paths::fill(template, &["x", "x"]);
        let response = drover_api::router(server.clone()).oneshot(get(&path, None)).await.unwrap();
        if response.status() != StatusCode::NOT_FOUND {
            continue;
        }
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&bytes);
        assert!(!body.contains("no API route"), "{template} is not routed: {body}");
    }
}

#[tokio::test]
async fn the_exec_page_runs_through_the_exec_api_checks_its_csrf_token_and_is_audited() {
    let (server, _dir) = support::start_server().await;
    let page = send(&server, get("/ui/exec", None)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Preview</button>"), "anonymous on an insecure server may exec: {}", page.body);
    let cookie = session_cookie(&page).expect("a session cookie");
    let csrf = csrf_of(&page.body);

    let forged = send(&server, post_form("/ui/exec", Some(&cookie), "filter=all&command=uptime")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    wait_for_audit(&server, |event| {
        event.action == "exec.run"
            && matches!(&event.outcome, drover_types::acl::AuditOutcome::Refused(why) if why.contains("CSRF"))
    })
    .await;

    // Nothing selected: the CLI's refusal, above the form it keeps.
    let unselected = send(&server, post_form("/ui/exec", Some(&cookie), &format!("csrf={csrf}&command=uptime"))).await;
    assert_eq!(unselected.status, StatusCode::BAD_REQUEST, "{}", unselected.body);
    assert!(unselected.body.contains("no command reaches the whole fleet by accident"), "{}", unselected.body);
    assert!(unselected.body.contains("value=\"uptime\""), "the form keeps the command");

    // A broken filter reads as the API's message.
    let broken = send(
        &server,
        post_form("/ui/exec", Some(&cookie), &format!("csrf={csrf}&filter=hostgroup+%3D%3D&command=uptime")),
    )
    .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST, "{}", broken.body);
    assert!(broken.body.contains("see docs/nodes.md"), "{}", broken.body);

    // A selection that matches no node runs through POST /v1/exec's
    // handler and answers as the CLI does, audited as the API call.
    let form = format!("csrf={csrf}&filter=hostgroup+%3D%3D+%22nowhere%22&command=uptime&timeout=5s");
    let ran = send(&server, post_form("/ui/exec", Some(&cookie), &form)).await;
    assert_eq!(ran.status, StatusCode::NOT_FOUND, "{}", ran.body);
    assert!(ran.body.contains("error: no node matches the selection"), "{}", ran.body);
    assert!(ran.body.contains("Preview</button>"), "the form stays to correct the selection");

    // A preview of the same: the same refusal, and no run audited.
    let previewed = send(&server, post_form("/ui/exec", Some(&cookie), &format!("{form}&preview=1"))).await;
    assert_eq!(previewed.status, StatusCode::NOT_FOUND, "{}", previewed.body);
    assert!(previewed.body.contains("error: no node matches the selection"), "{}", previewed.body);
    wait_for_audit(&server, |event| {
        event.action == "exec.run"
            && event.target == "/v1/exec"
            && event.details == "from the dashboard"
            && matches!(&event.outcome, drover_types::acl::AuditOutcome::Failed(why) if why.contains("no node matches"))
    })
    .await;
}

/// A log line of `node` at level `level`, `seq` seconds before now.
fn log_record(node: &str, level: &str, seq: u64, message: &str) -> drover_types::LogRecord {
    let now = drover_types::Timestamp::now().as_millis() * 1_000_000;
    drover_types::LogRecord {
        origin: format!("test-{node}"),
        seq,
        timestamp: now - i64::try_from(seq).unwrap() * 1_000_000_000,
        received: now,
        node: node.to_owned(),
        hostgroup: Some("bi/batch".to_owned()),
        environment: None,
        job: None,
        group: None,
        task: None,
        alloc: None,
        source: "file".to_owned(),
        stream: "/var/log/syslog".to_owned(),
        level: Some(level.to_owned()),
        message: message.to_owned(),
        fields: Default::default(),
    }
}

#[tokio::test]
async fn the_log_page_counts_by_a_field_through_the_count_api_and_links_to_the_narrowed_query() {
    let (server, _dir) = support::start_server().await;
    let mut records = Vec::new();
    for seq in 1..=6 {
        records.push(log_record("batch01", if seq % 2 == 0 { "error" } else { "info" }, seq, "disk full on /data"));
    }
    for seq in 1..=2 {
        records.push(log_record("batch02", "error", seq, "disk full on /scratch"));
    }
    let imported =
        server.import_logs(drover_proto::api::LogImportRequest { records, trust_timestamps: true }).await.unwrap();
    assert_eq!(imported.accepted, 8);

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = send(&server, get("/ui/logs?q=disk&since=1h&count_by=node", None)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        if page.body.contains(">batch02</a>") || std::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Largest first, each linking to `(disk) AND node:"…"`, still counted by node.
    let first = page.body.find(r#"q=%28disk%29%20AND%20node%3A%22batch01%22&#38;since=1h&#38;count_by=node""#);
    let second = page.body.find(r#"q=%28disk%29%20AND%20node%3A%22batch02%22&#38;since=1h&#38;count_by=node""#);
    assert!(first.is_some() && second.is_some() && first < second, "{}", page.body);
    assert!(page.body.contains(r#"<td class="num">6</td>"#) && page.body.contains(r#"<td class="num">2</td>"#));

    // Following a value narrows the lines and the counts.
    let narrowed =
        send(&server, get("/ui/logs?q=%28disk%29%20AND%20node%3A%22batch01%22&since=1h&count_by=level", None)).await;
    assert!(narrowed.body.contains("6 matching lines"), "{}", narrowed.body);
    assert!(narrowed.body.contains(r#"<td class="num">3</td>"#), "3 errors and 3 infos: {}", narrowed.body);
    assert!(!narrowed.body.contains(">batch02</a>"), "{}", narrowed.body);

    // A field that cannot be counted: the API's message, the lines still there.
    let refused = send(&server, get("/ui/logs?q=disk&since=1h&count_by=message", None)).await;
    assert_eq!(refused.status, StatusCode::OK, "{}", refused.body);
    assert!(refused.body.contains("8 matching lines") && refused.body.contains("error:"), "{}", refused.body);
}

#[tokio::test]
async fn the_live_tail_is_the_api_tail_under_the_dashboard_session() {
    let (server, _dir) = support::start_server().await;
    let response = drover_api::router(server.clone()).oneshot(get("/ui/logs/tail?q=disk", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/x-ndjson");
    drop(response);
    let broken = send(&server, get("/ui/logs/tail?q=%28disk", None)).await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST, "{}", broken.body);
    assert!(broken.body.contains("unbalanced parenthesis at column 1"), "{}", broken.body);
}

#[tokio::test]
async fn a_tailed_lines_here_or_everywhere_switch_redirects_to_the_search_and_bad_input_is_refused() {
    let (server, _dir) = support::start_server().await;
    let like = send(
        &server,
        get(
            "/ui/logs/like?since=6h&scope=node&node=batch01&message=Out%20of%20memory%3A%20Killed%20process%204242",
            None,
        ),
    )
    .await;
    assert_eq!(like.status, StatusCode::SEE_OTHER, "{}", like.body);
    assert_eq!(
        like.headers[header::LOCATION],
        "/ui/logs?q=%22Out%20of%20memory%3A%20Killed%20process%22%20node%3A%22batch01%22&since=6h"
    );
    // The query it redirects to is the one the page links to, and it parses
    // as the log query language reads it.
    let q = drover_ui::pages::logs::like_query(
        "Out of memory: Killed process 4242",
        drover_ui::pages::logs::Scope::Node,
        "batch01",
        None,
    )
    .expect("a phrase to search by");
    assert_eq!(like.headers[header::LOCATION], format!("/ui/logs?q={}&since=6h", drover_proto::paths::encode(&q)));
    drover_filter::log_query::parse(&q).unwrap_or_else(|error| panic!("{q}: {error}"));

    for (path, why) in [
        ("/ui/logs/like?scope=galaxy&message=x", "give node, hostgroup or fleet"),
        ("/ui/logs/like?scope=hostgroup&node=n&message=disk%20full", "the line has no host group"),
        ("/ui/logs/like?scope=fleet&message=12%3A00%20404", "no word without digits"),
    ] {
        let refused = send(&server, get(path, None)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{path}: {}", refused.body);
        assert!(refused.body.contains(why), "{path}: {}", refused.body);
    }
}

#[tokio::test]
async fn silencing_and_expiring_from_the_alert_page_go_through_the_silence_api_with_csrf_and_audit() {
    let (server, _dir) = support::start_server().await;
    let page = send(&server, get("/ui/alerts?silence=alertname%3D%22tmp-full%22", None)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(r#"action="/ui/alerts/silence""#), "{}", page.body);
    assert!(page.body.contains("alertname=&#34;tmp-full&#34;</textarea>"), "the link fills the form: {}", page.body);
    let cookie = session_cookie(&page).expect("a session cookie");
    let csrf = csrf_of(&page.body);
    let form = "matchers=alertname%3D%22tmp-full%22%0D%0Anode%3D~%22batch.*%22&duration=2h&comment=sda+swapped";

    // Forged: refused before the API's handler, and audited as the silence.
    let forged = send(&server, post_form("/ui/alerts/silence", Some(&cookie), form)).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    wait_for_audit(&server, |event| {
        event.action == "alert.silence"
            && matches!(&event.outcome, drover_types::acl::AuditOutcome::Refused(why) if why.contains("CSRF"))
    })
    .await;

    // No matcher, a bad duration, no comment: the CLI's and API's messages.
    for (bad, message) in [
        (format!("csrf={csrf}&matchers=+%0A&duration=2h&comment=x"), "needs at least one matcher"),
        (format!("csrf={csrf}&matchers=alertname%3Dx&duration=soon&comment=x"), "bad duration"),
        (format!("csrf={csrf}&matchers=alertname%3Dx&duration=2h&comment="), "a silence needs a comment"),
        (format!("csrf={csrf}&matchers=1bad%3Dx&duration=2h&comment=x"), "bad matcher"),
    ] {
        let refused = send(&server, post_form("/ui/alerts/silence", Some(&cookie), &bad)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}: {}", refused.body);
        assert!(refused.body.contains(message), "{bad}: {}", refused.body);
    }

    let made = send(&server, post_form("/ui/alerts/silence", Some(&cookie), &format!("csrf={csrf}&{form}"))).await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let location = made.headers[header::LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with("/ui/alerts?notice=silence%20"), "{location}");
    wait_for_audit(&server, |event| {
        event.action == "alert.silence"
            && event.target == "/v1/silences"
            && event.details == "from the dashboard"
            && event.outcome == drover_types::acl::AuditOutcome::Ok
    })
    .await;

    let listed = send(&server, get(&location, Some(&cookie))).await;
    assert!(listed.body.contains("sda swapped"), "{}", listed.body);
    assert!(listed.body.contains(r#"alertname=&#34;tmp-full&#34;, node=~&#34;batch.*&#34;"#), "{}", listed.body);
    let marker = r#"action="/ui/silence/"#;
    let at = listed.body.find(marker).expect("an expire form") + marker.len();
    let id = listed.body[at..].split('/').next().unwrap().to_owned();

    let forged = send(&server, post_form(&format!("/ui/silence/{id}/expire"), Some(&cookie), "csrf=nope")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    let expired =
        send(&server, post_form(&format!("/ui/silence/{id}/expire"), Some(&cookie), &format!("csrf={csrf}"))).await;
    assert_eq!(expired.status, StatusCode::SEE_OTHER, "{}", expired.body);
    wait_for_audit(&server, |event| {
        event.action == "alert.unsilence"
            && event.target == format!("/v1/silence/{id}")
            && event.outcome == drover_types::acl::AuditOutcome::Ok
    })
    .await;
    let after = send(&server, get("/ui/alerts", Some(&cookie))).await;
    assert!(!after.body.contains("sda swapped") && after.body.contains("No silence."), "over: {}", after.body);
}

#[tokio::test]
async fn without_site_apply_there_is_no_silence_form_and_a_post_is_refused_as_the_api_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path().join("server"), "127.0.0.1:1".to_owned());
    config.security =
        SecurityMode::Secure(TlsSettings { validity: Duration::from_secs(86_400), ..TlsSettings::default() });
    let server = Server::start(config).await.unwrap();
    for _ in 0..100 {
        if server.status().is_leader && server.consistent_state().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bootstrap = send(&server, Request::post("/v1/acl/bootstrap").body(Body::empty()).unwrap()).await;
    let root =
        serde_json::from_str::<serde_json::Value>(&bootstrap.body).unwrap()["secret"].as_str().unwrap().to_owned();
    let json = |method: &str, path: &str, body: serde_json::Value| {
        Request::builder()
            .method(method)
            .uri(path)
            .header(drover_proto::api::TOKEN_HEADER, &root)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let policy = serde_json::json!({ "file_name": "viewer.hcl", "source": "site { capabilities = [\"read\"] }\n" });
    let applied = send(&server, json("PUT", "/v1/acl/policy/viewer", policy)).await;
    assert!(applied.status.is_success(), "{}", applied.body);
    let created =
        send(&server, json("POST", "/v1/acl/tokens", serde_json::json!({ "name": "viewer", "policies": ["viewer"] })))
            .await;
    assert!(created.status.is_success(), "{}", created.body);
    let viewer =
        serde_json::from_str::<serde_json::Value>(&created.body).unwrap()["secret"].as_str().unwrap().to_owned();

    let page = send(&server, get("/ui/alerts", Some(&viewer))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Silences"), "{}", page.body);
    assert!(!page.body.contains("/ui/alerts/silence") && !page.body.contains("New silence"), "{}", page.body);
    let csrf = csrf_of(&page.body);
    let form = format!("csrf={csrf}&matchers=alertname%3Dx&duration=2h&comment=x");
    let refused = send(&server, post_form("/ui/alerts/silence", Some(&viewer), &form)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("apply"), "the API's refusal names the capability: {}", refused.body);
    wait_for_audit(&server, |event| {
        event.action == "alert.silence"
            && event.name == "viewer"
            && matches!(event.outcome, drover_types::acl::AuditOutcome::Refused(_))
    })
    .await;

    let page = send(&server, get("/ui/alerts", Some(&root))).await;
    assert!(page.body.contains("New silence"), "the management token may silence: {}", page.body);
}
