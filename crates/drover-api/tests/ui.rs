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
/// (`drover_proto::paths::UI_ALL`).
#[tokio::test]
async fn every_dashboard_route_is_served() {
    let (server, _dir) = support::start_server().await;
    for template in drover_proto::paths::UI_ALL {
        let path = drover_proto::paths::fill(template, &["x", "x"]);
        let page = send(&server, get(&path, None)).await;
        assert!(!page.body.contains("no API route"), "{template} is not routed: {}", page.body);
    }
}

#[tokio::test]
async fn the_exec_page_runs_through_the_exec_api_checks_its_csrf_token_and_is_audited() {
    let (server, _dir) = support::start_server().await;
    let page = send(&server, get("/ui/exec", None)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Run</button>"), "anonymous on an insecure server may exec: {}", page.body);
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
    assert!(ran.body.contains("Run</button>"), "the form stays to correct the selection");
    wait_for_audit(&server, |event| {
        event.action == "exec.run"
            && event.target == "/v1/exec"
            && event.details == "from the dashboard"
            && matches!(&event.outcome, drover_types::acl::AuditOutcome::Failed(why) if why.contains("no node matches"))
    })
    .await;
}
