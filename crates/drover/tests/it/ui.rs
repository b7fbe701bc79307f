//! The dashboard in a real browser (Debian's chromium driven through
//! chromedriver with fantoccini) against real servers and agents: log in
//! with a token, filter nodes, read why a group is not placed, search
//! logs and zoom with a histogram bar, narrow them with the count-by
//! panel, follow them live, approve a hammer run. Screenshots
//! at 1366×768, light and dark, land in `target/ui-screenshots/` to be
//! looked at.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use drover_golden::needs;
use fantoccini::{Client as Browser, ClientBuilder, Locator};

use crate::harness::{Cluster, Peer, Process, drover_binary, free_port, kill_processes_under, wait_until};

/// chromium and chromedriver, as Debian installs them.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether the browser and its driver are installed (else skip, or fail
/// under CI).
fn browser_present() -> bool {
    needs::are_met([needs::program(CHROMIUM, "chromium"), needs::program(CHROMEDRIVER, "chromium-driver")])
}

/// A chromedriver on a free port, killed when dropped, and the browser
/// session it drives.
struct Driver {
    _chromedriver: Peer,
    _profile: tempfile::TempDir,
    browser: Browser,
}

impl Driver {
    /// Starts chromedriver and a headless chromium with a fresh profile,
    /// a 1366×768 window, light or dark colour scheme.
    async fn start(dark: bool) -> Driver {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("drover-chromedriver-{port}.log"));
        let chromedriver = Peer(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start chromedriver"),
        );
        wait_until(
            "chromedriver to listen",
            Duration::from_secs(30),
            || async move { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() },
            || std::fs::read_to_string(&log).unwrap_or_default(),
        )
        .await;
        let profile = tempfile::Builder::new().prefix("drover-chromium-").tempdir().unwrap();
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--ignore-certificate-errors".to_owned(),
            "--window-size=1366,768".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if dark {
            args.push("--force-dark-mode".to_owned());
            args.push("--blink-settings=preferredColorScheme=0".to_owned());
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".to_owned(), serde_json::json!({ "binary": CHROMIUM, "args": args }));
        capabilities.insert("acceptInsecureCerts".to_owned(), serde_json::json!(true));
        let browser = ClientBuilder::rustls()
            .expect("a rustls WebDriver client")
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a chromium session");
        // The window holds the viewport and the browser's own parts: size
        // it so that the viewport (and so the screenshots) is 1366×768.
        let frame = browser
            .execute("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]", vec![])
            .await
            .unwrap();
        let extra = |index: usize| u32::try_from(frame[index].as_u64().unwrap_or(0)).unwrap_or(0);
        browser.set_window_size(1366 + extra(0), 768 + extra(1)).await.unwrap();
        Driver { _chromedriver: chromedriver, _profile: profile, browser }
    }

    /// Goes to `url` and waits for the page's main content.
    async fn open(&self, url: &str) {
        self.browser.goto(url).await.unwrap();
        self.browser.wait().for_element(Locator::Css("main")).await.unwrap();
    }

    /// Waits up to a minute for an element; else fails with the page's
    /// text.
    async fn wait_for(&self, what: &str, locator: Locator<'_>) -> fantoccini::elements::Element {
        match self.browser.wait().at_most(Duration::from_secs(60)).for_element(locator).await {
            Ok(element) => element,
            Err(error) => {
                let html = self.browser.source().await.unwrap_or_default();
                panic!("waiting for {what}: {error}; the page: {html}")
            }
        }
    }

    /// The visible text of the page's main content.
    async fn text(&self) -> String {
        self.browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap()
    }

    /// Saves a screenshot of the viewport as `target/ui-screenshots/NAME.png`.
    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.browser.screenshot().await.unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    async fn close(self) {
        let _ = self.browser.close().await;
    }
}

/// `target/ui-screenshots/` of the workspace.
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots")
}

/// A job whose group can never be placed: no node is in its host group.
const STUCK: &str = r#"
job "stuck" {
  type = "service"
  group "daq" {
    count = 2
    constraint {
      attribute = "${node.hostgroup}"
      operator  = "glob"
      value     = "belle2/daq/**"
    }
    task "reader" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["300"]
      }
    }
  }
}
"#;

/// A job that says hello a few times, to search for.
const TALKER: &str = r#"
job "talker" {
  type = "service"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "for i in 1 2 3 4 5; do echo hello-dashboard line $i; done; sleep 300"]
      }
    }
  }
}
"#;

/// A job that writes `tail-proof line` once `gate` exists.
fn ticker(gate: &Path) -> String {
    format!(
        r#"
job "ticker" {{
  type = "service"
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "while [ ! -e {gate} ]; do sleep 0.1; done; echo tail-proof line; sleep 300"]
      }}
    }}
  }}
}}
"#,
        gate = gate.display()
    )
}

/// `text` escaped for a URL's query.
fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(byte).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The `N` of the page's "N matching lines".
fn matching_lines(page: &str) -> u64 {
    let at = page.find(" matching lines").unwrap_or_else(|| panic!("no count of matching lines: {page}"));
    let digits: String = page[..at].chars().rev().take_while(char::is_ascii_digit).collect();
    digits.chars().rev().collect::<String>().parse().unwrap_or_else(|_| panic!("no count of matching lines: {page}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_filters_nodes_reads_why_a_job_is_stuck_zooms_into_logs_and_approves_a_hammer_run() {
    if !browser_present() {
        return;
    }
    let mut cluster = Cluster::start().await;
    cluster.start_agents(&["batch01".to_owned()], &["--hostgroup", "bi/batch/a", "--environment", "qa"]).await;
    cluster.start_agents(&["web01".to_owned()], &["--hostgroup", "web/front", "--environment", "production"]).await;
    let base = format!("http://{}", cluster.addresses[0]);

    // A site whose approve-mode hammer a console line triggers.
    let site = cluster.dir.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("console-batch01"), "boot\n").unwrap();
    std::fs::write(site.join("console-web01"), "boot\n").unwrap();
    std::fs::write(
        site.join("site.hcl"),
        format!(
            r#"
provider "lab" {{
  console          = "cat {dir}/console-{{{{node.name}}}}"
  console_interval = "300ms"
}}
hammer "drain-on-disk-failure" {{
  when   {{ log {{ source = "console"  match = "disk failure" }} }}
  action {{ drain {{ deadline = "1m" }} }}
  mode   = "approve"
}}
"#,
            dir = site.display()
        ),
    )
    .unwrap();
    let applied = cluster.cli(&["apply", site.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    assert!(cluster.run_job("stuck", STUCK).status.success());
    assert!(cluster.run_job("talker", TALKER).status.success());
    // A ticker that writes one line once the test opens its gate (after
    // the live tail is on).
    let tail_gate = cluster.dir.path().join("tail-gate");
    assert!(cluster.run_job("ticker", &ticker(&tail_gate)).status.success());
    cluster.wait_until_evaluated("stuck").await;
    let client = cluster.client.clone();
    cluster
        .wait_for("the talker's lines to be searchable", || {
            let client = client.clone();
            async move {
                let query = drover_proto::api::LogQuery {
                    q: "hello-dashboard".to_owned(),
                    since: Some("1h".to_owned()),
                    ..Default::default()
                };
                client.search_logs(&query, &Default::default()).await.is_ok_and(|found| found.total_matching >= 5)
            }
        })
        .await;
    // The console lines are indexed before the trigger line is written
    // (the hammer watches lines from its start on).
    std::fs::write(site.join("console-batch01"), "boot\nata1: disk failure\n").unwrap();
    cluster
        .wait_for("a hammer run waiting for approval", || {
            let client = client.clone();
            async move {
                client.hammer_history(Some("drain-on-disk-failure"), 10).await.is_ok_and(|entries| {
                    entries.iter().any(|entry| {
                        entry
                            .run
                            .as_ref()
                            .is_some_and(|run| run.state == drover_react::hammer::RunState::AwaitingApproval)
                    })
                })
            }
        })
        .await;

    let driver = Driver::start(false).await;

    // `/` leads to the overview, which puts the waiting run first.
    driver.open(&format!("{base}/")).await;
    assert!(driver.browser.current_url().await.unwrap().path() == "/ui/");
    let overview = driver.text().await;
    assert!(overview.contains("Needs a human"), "{overview}");
    assert!(overview.contains("Hammer drain-on-disk-failure on node/batch01 awaits approval"), "{overview}");
    driver.screenshot("overview-light").await;

    // Nodes: the filter language in the box.
    driver.open(&format!("{base}/ui/nodes")).await;
    let filter_box = driver.browser.find(Locator::Css("input[name=filter]")).await.unwrap();
    filter_box.send_keys(r#"hostgroup =~ "bi/batch/**" and environment == "qa""#).await.unwrap();
    driver.browser.find(Locator::Css("form.search button")).await.unwrap().click().await.unwrap();
    driver.browser.wait().for_element(Locator::Css("ul.tree")).await.unwrap();
    let filtered = driver.text().await;
    assert!(filtered.contains("batch01") && !filtered.contains("web01"), "{filtered}");
    assert!(filtered.contains("1 shown"), "{filtered}");
    driver.screenshot("nodes-filtered").await;
    // A broken filter reads as the CLI's message.
    driver.open(&format!("{base}/ui/nodes?filter=hostgroup%20%3D%3D")).await;
    let broken = driver.text().await;
    assert!(broken.contains("bad filter:") && broken.contains("docs/nodes.md"), "{broken}");

    // The job that cannot be placed says why, in words.
    driver.open(&format!("{base}/ui/jobs")).await;
    driver.browser.find(Locator::LinkText("stuck")).await.unwrap().click().await.unwrap();
    driver.browser.wait().for_element(Locator::Id("placement")).await.unwrap();
    let stuck = driver.text().await;
    assert!(stuck.contains("Group daq: 2 could not be placed"), "{stuck}");
    assert!(stuck.contains("filtered by constraint ${node.hostgroup} glob belle2/daq/**"), "{stuck}");
    driver.screenshot("job-unplaced").await;

    // Logs: search, then click the fullest bar of the histogram to zoom.
    driver.open(&format!("{base}/ui/logs")).await;
    driver.browser.find(Locator::Css("input[name=q]")).await.unwrap().send_keys("hello-dashboard").await.unwrap();
    driver.browser.find(Locator::Css("form.search button")).await.unwrap().click().await.unwrap();
    driver.browser.wait().for_element(Locator::Css(".histogram a")).await.unwrap();
    let searched = driver.text().await;
    assert!(searched.contains("5 matching lines"), "{searched}");
    assert_eq!(driver.browser.find_all(Locator::Css("table.loglines mark")).await.unwrap().len(), 5);
    driver.screenshot("logs-search").await;
    let fullest = driver
        .browser
        .execute(
            "const bars = [...document.querySelectorAll('.histogram a')];
             const tallest = bars.reduce((a, b) => (parseFloat(b.firstChild.style.height) > parseFloat(a.firstChild.style.height) ? b : a));
             return tallest.getAttribute('href');",
            vec![],
        )
        .await
        .unwrap();
    let fullest = fullest.as_str().unwrap().to_owned();
    driver.browser.find(Locator::Css(&format!(".histogram a[href='{fullest}']"))).await.unwrap().click().await.unwrap();
    driver.browser.wait().for_element(Locator::Css("table.loglines")).await.unwrap();
    let zoomed_url = driver.browser.current_url().await.unwrap();
    let zoomed_query = zoomed_url.query().unwrap_or_default().to_owned();
    assert!(zoomed_query.contains("since=") && zoomed_query.contains("until="), "{zoomed_url}");
    let zoomed = driver.text().await;
    assert!(zoomed.contains("5 matching lines"), "the bucket holds every line: {zoomed}");
    driver.screenshot("logs-zoomed").await;

    // Count by: the side panel counts the matches by job; clicking a value
    // narrows the search to it, in the URL and in the lines.
    let broad = r#"hello-dashboard OR "disk failure""#;
    driver.open(&format!("{base}/ui/logs?q={}&since=1h&count_by=job", url_escape(broad))).await;
    driver.browser.wait().for_element(Locator::Css("table.count-table")).await.unwrap();
    let counted = driver.text().await;
    let before = matching_lines(&counted);
    assert!(before > 5, "the console's line matches too: {counted}");
    let panel = driver.browser.find(Locator::Css("table.count-table")).await.unwrap().text().await.unwrap();
    assert!(panel.contains("talker") && panel.contains('5'), "{panel}");
    driver.screenshot("logs-count-by").await;
    driver.browser.find(Locator::LinkText("talker")).await.unwrap().click().await.unwrap();
    driver.browser.wait().for_element(Locator::Css("table.count-table")).await.unwrap();
    let narrowed_url = driver.browser.current_url().await.unwrap();
    let narrowed_q: String =
        narrowed_url.query_pairs().find(|(key, _)| key == "q").map(|(_, value)| value.into_owned()).unwrap_or_default();
    assert_eq!(narrowed_q, format!(r#"({broad}) AND job:"talker""#), "{narrowed_url}");
    assert!(narrowed_url.query_pairs().any(|(key, value)| key == "count_by" && value == "job"), "{narrowed_url}");
    let narrowed = driver.text().await;
    assert_eq!(matching_lines(&narrowed), 5, "{narrowed}");
    let rows = driver.browser.find_all(Locator::Css("table.loglines tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 5);
    for row in rows {
        let text = row.text().await.unwrap();
        assert!(text.contains("talker") && text.contains("hello-dashboard"), "only the talker's lines: {text}");
    }

    // Live tail: switched on, a line the ticker writes afterwards appears
    // on top of the table without a reload.
    driver.open(&format!("{base}/ui/logs?q=tail-proof&since=1h")).await;
    driver.browser.execute("window.droverNotReloaded = true; return null", vec![]).await.unwrap();
    let toggle = driver.browser.find(Locator::Id("tail")).await.unwrap();
    assert!(
        driver.browser.find(Locator::Id("tail-toggle")).await.unwrap().is_displayed().await.unwrap(),
        "with JavaScript the switch shows"
    );
    toggle.click().await.unwrap();
    driver
        .browser
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::XPath("//*[@id='tail-status' and contains(., 'following')]"))
        .await
        .expect("the tail to be followed");
    std::fs::write(&tail_gate, "go").unwrap();
    let fresh = driver
        .browser
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::XPath(
            "//table[contains(@class,'loglines')]//tr[contains(@class,'fresh')][contains(., 'tail-proof line')]",
        ))
        .await
        .expect("the ticker's line in the page");
    assert!(fresh.text().await.unwrap().contains("ticker"));
    // Its "here or everywhere?" switch goes through /ui/logs/like.
    let fleet = fresh.find(Locator::LinkText("fleet")).await.unwrap().attr("href").await.unwrap().unwrap();
    assert!(fleet.starts_with("/ui/logs/like?since=1h&scope=fleet&node="), "{fleet}");
    assert!(fleet.contains("message=tail-proof+line"), "{fleet}");
    let kept = driver.browser.execute("return window.droverNotReloaded === true", vec![]).await.unwrap();
    assert_eq!(kept, serde_json::json!(true), "the page was not reloaded");
    let status = driver.browser.find(Locator::Id("tail-status")).await.unwrap().text().await.unwrap();
    assert!(status.contains("1 new line"), "{status}");
    driver.screenshot("logs-live-tail").await;

    // Hammers: approve the waiting run with its button.
    driver.open(&format!("{base}/ui/hammers")).await;
    driver.screenshot("hammers-awaiting").await;
    driver.browser.find(Locator::Css("button[name=approve]")).await.unwrap().click().await.unwrap();
    driver.browser.wait().for_element(Locator::Css("p.notice")).await.unwrap();
    let approved = driver.text().await;
    assert!(approved.contains("approved"), "{approved}");
    cluster
        .wait_for("the approved run to drain batch01", || {
            let client = client.clone();
            // A node without allocations drains at once: then it stays ineligible.
            async move {
                client.node("batch01").await.is_ok_and(|status| {
                    status.node.drain.is_some() || status.node.eligibility == drover_types::NodeEligibility::Ineligible
                })
            }
        })
        .await;
    let audit = cluster.client.audit(&drover_proto::api::AuditQuery::default()).await.unwrap();
    assert!(
        audit.iter().any(|event| event.action == "hammer.approve" && event.details.contains("dashboard")),
        "the approval is audited as its API call: {audit:?}"
    );
    driver.close().await;

    // Dark mode follows the system setting.
    let dark = Driver::start(true).await;
    dark.open(&format!("{base}/ui/")).await;
    let is_dark =
        dark.browser.execute("return matchMedia('(prefers-color-scheme: dark)').matches", vec![]).await.unwrap();
    assert_eq!(is_dark, serde_json::json!(true));
    let background =
        dark.browser.execute("return getComputedStyle(document.body).backgroundColor", vec![]).await.unwrap();
    assert_eq!(background, serde_json::json!("rgb(18, 22, 29)"), "the dark palette is used");
    dark.screenshot("overview-dark").await;
    dark.open(&format!("{base}/ui/job/stuck")).await;
    dark.screenshot("job-dark").await;
    dark.close().await;
}

/// A system job whose task writes 250 lines of one kind, each with its
/// own number.
const QUOTA: &str = r#"
job "quota" {
  type = "system"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "i=0; while [ $i -lt 250 ]; do i=$((i+1)); echo \"scanner quota exceeded for volume vol$i\"; done; sleep 300"]
      }
    }
  }
}
"#;

/// The log page reads on as it is scrolled (the next page by cursor,
/// appended), and every line's "here or everywhere?" switch searches for
/// lines like it on its node, in its host group and in the whole fleet.
#[tokio::test(flavor = "multi_thread")]
async fn log_lines_read_on_as_the_page_scrolls_and_each_finds_its_like_here_or_everywhere() {
    if !browser_present() {
        return;
    }
    let mut cluster = Cluster::start().await;
    cluster.start_agents(&["batch01".to_owned()], &["--hostgroup", "bi/batch/a"]).await;
    cluster.start_agents(&["web01".to_owned()], &["--hostgroup", "web/front"]).await;
    let base = format!("http://{}", cluster.addresses[0]);
    assert!(cluster.run_job("quota", QUOTA).status.success());
    let client = cluster.client.clone();
    cluster
        .wait_for("both nodes' 250 lines to be searchable", || {
            let client = client.clone();
            async move {
                let query = drover_proto::api::LogQuery {
                    q: "scanner".to_owned(),
                    since: Some("1h".to_owned()),
                    ..Default::default()
                };
                client.search_logs(&query, &Default::default()).await.is_ok_and(|found| found.total_matching >= 500)
            }
        })
        .await;

    let driver = Driver::start(false).await;
    driver.open(&format!("{base}/ui/logs?q=scanner&since=1h")).await;
    assert_eq!(matching_lines(&driver.text().await), 500);
    let rows = || async {
        let count = driver
            .browser
            .execute("return document.querySelectorAll('table.loglines tbody tr').length", vec![])
            .await
            .unwrap();
        count.as_u64().unwrap()
    };
    // Scrolled to the bottom again and again, the page reads every line.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while rows().await < 500 {
        assert!(std::time::Instant::now() < deadline, "only {} of 500 lines after scrolling", rows().await);
        driver.browser.execute("window.scrollTo(0, document.body.scrollHeight); return null", vec![]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(rows().await, 500, "no line twice");
    driver
        .browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//*[@id='log-pager' and not(.//a[@rel='next'])]"))
        .await
        .expect("no older lines link after the last page");
    let distinct = driver
        .browser
        .execute(
            "return new Set([...document.querySelectorAll('table.loglines tbody tr')].map(r => r.textContent)).size",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(distinct, serde_json::json!(500), "every line once");
    driver.screenshot("logs-read-on").await;

    // The switch on the first line: its node, its host group, the fleet.
    driver.open(&format!("{base}/ui/logs?q=scanner&since=1h")).await;
    let first = driver.browser.find(Locator::Css("table.loglines tbody tr")).await.unwrap();
    let node = first.find(Locator::Css("td:nth-child(2)")).await.unwrap().text().await.unwrap();
    let hostgroup = if node == "batch01" { "bi/batch/a" } else { "web/front" };
    let mut hrefs = Vec::new();
    for label in ["node", "group", "fleet"] {
        let link = first.find(Locator::LinkText(label)).await.unwrap();
        hrefs.push(link.attr("href").await.unwrap().unwrap());
    }
    for (href, (expected_q, matching)) in hrefs.iter().zip([
        (format!(r#""scanner quota exceeded for volume" node:"{node}""#), 250),
        (format!(r#""scanner quota exceeded for volume" hostgroup:"{hostgroup}""#), 250),
        (r#""scanner quota exceeded for volume""#.to_owned(), 500),
    ]) {
        driver.open(&format!("{base}{href}")).await;
        let url = driver.browser.current_url().await.unwrap();
        let q: String = url.query_pairs().find(|(key, _)| key == "q").map(|(_, value)| value.into_owned()).unwrap();
        assert_eq!(q, expected_q, "{url}");
        assert!(url.query_pairs().any(|(key, value)| key == "since" && value == "1h"), "{url}");
        assert_eq!(matching_lines(&driver.text().await), matching, "{url}");
    }
    driver.screenshot("logs-like-fleet").await;
    driver.close().await;

    // A live-tailed line's switch goes through /ui/logs/like, which
    // redirects to the same search; a scope it does not know is refused.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let like = http
        .get(format!(
            "{base}/ui/logs/like?since=1h&scope=hostgroup&node=batch01&hostgroup=bi%2Fbatch%2Fa&message={}",
            url_escape("scanner quota exceeded for volume vol7")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(like.status(), reqwest::StatusCode::SEE_OTHER);
    let location = like.headers()["location"].to_str().unwrap();
    assert_eq!(
        location,
        "/ui/logs?q=%22scanner%20quota%20exceeded%20for%20volume%22%20hostgroup%3A%22bi%2Fbatch%2Fa%22&since=1h"
    );
    let bad = http.get(format!("{base}/ui/logs/like?scope=galaxy&message=x")).send().await.unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("scope &#34;galaxy&#34;: give node, hostgroup or fleet"));
    let bare = http.get(format!("{base}/ui/logs/like?scope=fleet&message=12%3A00%20404")).send().await.unwrap();
    assert_eq!(bare.status(), reqwest::StatusCode::BAD_REQUEST);
}

/// One secure server (TLS, ACLs) in a temporary directory.
struct SecureServer {
    dir: tempfile::TempDir,
    address: String,
    _server: Process,
}

impl SecureServer {
    async fn start() -> SecureServer {
        let dir = tempfile::Builder::new().prefix("drover-it-ui-").tempdir().unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(drover_binary());
        command.args(["server", "--bind", &address, "--data-dir"]).arg(dir.path().join("server0")).args([
            "--heartbeat-interval",
            "1s",
            "--heartbeat-ttl",
            "4s",
            "--min-free-disk-mb",
            "0",
        ]);
        let server = Process::spawn_for_test("server0", &mut command, dir.path().join("server0.log"));
        let secure = SecureServer { dir, address, _server: server };
        let client = || secure.client(None);
        wait_until(
            "a secure server to answer",
            Duration::from_secs(60),
            || async { secure.ca().exists() && client().leader().await.is_ok_and(|info| info.leader_id.is_some()) },
            || std::fs::read_to_string(secure.dir.path().join("server0.log")).unwrap_or_default(),
        )
        .await;
        secure
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("server0/tls/ca.pem")
    }

    fn client(&self, token: Option<&str>) -> drover_client::Client {
        let credentials = drover_client::Credentials {
            ca_pem: std::fs::read_to_string(self.ca()).ok(),
            token: token.map(str::to_owned),
        };
        drover_client::Client::secured(&self.address, &credentials).unwrap()
    }
}

impl Drop for SecureServer {
    fn drop(&mut self) {
        kill_processes_under(self.dir.path());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_acls_the_dashboard_asks_for_a_token_and_keeps_it_in_a_secure_cookie() {
    if !browser_present() {
        return;
    }
    let server = SecureServer::start().await;
    let secret = server.client(None).acl_bootstrap().await.unwrap().secret;
    let base = format!("https://{}", server.address);
    let driver = Driver::start(false).await;

    // Without a token: the login form.
    driver.open(&format!("{base}/ui/nodes")).await;
    let url = driver.browser.current_url().await.unwrap();
    assert_eq!(url.path(), "/ui/login", "{url}");
    driver.screenshot("login").await;

    // A wrong token: the server's reason, and still the form.
    driver.browser.find(Locator::Id("token")).await.unwrap().send_keys("not-a-token").await.unwrap();
    driver.browser.find(Locator::Css("main form button")).await.unwrap().click().await.unwrap();
    driver.browser.wait().for_element(Locator::Css("div.error")).await.unwrap();
    let refused = driver.text().await;
    assert!(refused.contains("error:"), "{refused}");

    // The right one: back where we wanted to go, as the token's name.
    driver.browser.find(Locator::Id("token")).await.unwrap().send_keys(&secret).await.unwrap();
    driver.browser.find(Locator::Css("main form button")).await.unwrap().click().await.unwrap();
    driver.browser.wait().for_element(Locator::Css("form.search")).await.unwrap();
    let url = driver.browser.current_url().await.unwrap();
    assert_eq!(url.path(), "/ui/nodes", "{url}");
    let header = driver.browser.find(Locator::Css("header.top")).await.unwrap().text().await.unwrap();
    assert!(header.contains("Log out"), "{header}");
    // The cookie is out of reach of scripts.
    let visible_cookies = driver.browser.execute("return document.cookie", vec![]).await.unwrap();
    assert_eq!(visible_cookies, serde_json::json!(""));
    let cookie = driver.browser.get_named_cookie("drover_session").await.unwrap();
    assert_eq!(cookie.value(), secret);
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    driver.open(&format!("{base}/ui/")).await;
    driver.screenshot("overview-logged-in").await;

    // Logging out forgets it.
    driver.browser.find(Locator::Css("header form button")).await.unwrap().click().await.unwrap();
    driver.open(&format!("{base}/ui/")).await;
    assert_eq!(driver.browser.current_url().await.unwrap().path(), "/ui/login");
    driver.close().await;
}

/// Usage history without a browser: an agent connected to one server sends
/// its samples there; another server answers `GET /v1/node/{node}/usage`
/// with them (asking its peers) and draws them on the node page as inline
/// SVG.
#[tokio::test(flavor = "multi_thread")]
async fn a_nodes_usage_history_is_served_by_every_server_and_drawn_on_its_page() {
    let mut cluster = Cluster::start_servers(2).await;
    cluster.start_agent_on("hist01", 1, &[]).await;
    let other = format!("http://{}", cluster.addresses[0]);
    let http = reqwest::Client::new();
    let usage_url = format!("{other}/v1/node/hist01/usage?since=1h");
    wait_until(
        "the other server to serve a minute of hist01's usage",
        Duration::from_secs(60),
        || {
            let http = http.clone();
            let usage_url = usage_url.clone();
            async move {
                let Ok(response) = http.get(&usage_url).send().await else { return false };
                let Ok(history) = response.json::<drover_proto::api::NodeUsageHistory>().await else { return false };
                history
                    .points
                    .first()
                    .is_some_and(|point| point.cpu_percent.is_some() && point.memory_percent.is_some())
            }
        },
        || cluster.logs(),
    )
    .await;
    let history: drover_proto::api::NodeUsageHistory = http.get(&usage_url).send().await.unwrap().json().await.unwrap();
    assert_eq!((history.node.as_str(), history.step_secs), ("hist01", 60));
    // The last hour every 10 seconds, from the other server too.
    let fine: drover_proto::api::NodeUsageHistory =
        http.get(format!("{usage_url}&step=10s")).send().await.unwrap().json().await.unwrap();
    assert_eq!(fine.step_secs, 10);
    assert!(fine.points.iter().any(|point| point.cpu_percent.is_some()), "{:?}", fine.points);
    assert!(fine.points.iter().all(|point| point.time_ms % 10_000 == 0), "{:?}", fine.points);

    let page = http.get(format!("{other}/ui/node/hist01")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<svg viewBox=\"0 0 288 40\""), "a chart on the node page: {page}");
    // The node table of the other server shows hist01's measured use (the
    // servers' summaries merged) and sorts by it.
    let table = http.get(format!("{other}/ui/nodes?sort=cpu-used")).send().await.unwrap().text().await.unwrap();
    assert!(table.contains(r#"<th class="num" aria-sort="descending"><a href="/ui/nodes?sort=cpu-used""#), "{table}");
    let row = &table[table.find(">hist01</a>").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains(r#"title="measured "#) && !row.contains("no sample"), "{row}");
    assert!(page.contains("aria-label=\"CPU busy over the last 24 h:"), "{page}");

    // The exec page runs a command there through the other server, and
    // groups the output as the CLI does.
    let form = http.get(format!("{other}/ui/exec")).send().await.unwrap();
    let cookie = form.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let form = form.text().await.unwrap();
    let marker = r#"<meta name="drover-csrf" content=""#;
    let csrf = form[form.find(marker).unwrap() + marker.len()..].split('"').next().unwrap().to_owned();
    let ran = http
        .post(format!("{other}/ui/exec"))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&nodes=hist01&command=echo+hello-%24%28%286*7%29%29&timeout=20s"))
        .send()
        .await
        .unwrap();
    assert_eq!(ran.status(), reqwest::StatusCode::OK);
    let ran = ran.text().await.unwrap();
    assert!(ran.contains("hist01 (1)") && ran.contains("hello-42"), "{ran}");
    assert!(ran.contains("1 node: 1 success"), "{ran}");

    let bad = http.get(format!("{other}/v1/node/hist01/usage?since=yesterday")).send().await.unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("since: cannot read time \\\"yesterday\\\""));
}

/// Usage history survives a restart: a server stopped cleanly writes it
/// to its data directory and reads it back when it starts, so the node's
/// earlier minutes are still served (its agent is gone: nothing new could
/// have brought them back).
#[tokio::test(flavor = "multi_thread")]
async fn a_nodes_usage_history_survives_a_server_restart() {
    let mut cluster = Cluster::start().await;
    cluster.start_agents(&["keep01".to_owned()], &[]).await;
    let base = format!("http://{}", cluster.addresses[0]);
    let http = reqwest::Client::new();
    let usage_url = format!("{base}/v1/node/keep01/usage?since=24h&step=1m");
    let read = || {
        let http = http.clone();
        let usage_url = usage_url.clone();
        async move {
            let response = http.get(&usage_url).send().await.ok()?;
            response.json::<drover_proto::api::NodeUsageHistory>().await.ok()
        }
    };
    wait_until(
        "a minute of keep01's usage",
        Duration::from_secs(60),
        || async { read().await.is_some_and(|history| history.points.iter().any(|point| point.cpu_percent.is_some())) },
        || cluster.logs(),
    )
    .await;
    cluster.kill_agent("keep01");
    let before = read().await.expect("the history before the restart");
    assert!(!before.points.is_empty());
    let fine_url = format!("{base}/v1/node/keep01/usage?since=1h&step=10s");
    let fine_before: drover_proto::api::NodeUsageHistory =
        http.get(&fine_url).send().await.unwrap().json().await.unwrap();
    assert!(!fine_before.points.is_empty());

    // A clean stop (SIGTERM) writes the file; the restarted server reads it.
    cluster.servers[0].signal(nix::sys::signal::Signal::SIGTERM);
    let stopped = cluster.servers[0].wait_exit(Duration::from_secs(30));
    assert!(stopped.is_some_and(|status| status.success()), "{}", cluster.servers[0].output());
    let saved = cluster.dir.path().join("server/usage-history.bin");
    assert!(saved.exists(), "the history file in the data directory");
    cluster.restart_server().await;
    let after = read().await.expect("the history after the restart");
    assert_eq!(after.step_secs, 60);
    for point in &before.points {
        assert!(after.points.contains(point), "{point:?} is still served after the restart: {:?}", after.points);
    }
    let fine_after: drover_proto::api::NodeUsageHistory =
        http.get(&fine_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(fine_after.points, fine_before.points, "the 10-second points too");

    // A damaged file is moved aside and reported; the server starts anyway.
    cluster.servers[0].signal(nix::sys::signal::Signal::SIGTERM);
    assert!(cluster.servers[0].wait_exit(Duration::from_secs(30)).is_some());
    std::fs::write(&saved, b"DRVUSAGE\x01\0\0\0 not zstd").unwrap();
    cluster.restart_server().await;
    let log = cluster.servers[0].output();
    assert!(log.contains("the saved usage history does not read"), "{log}");
    let moved = std::fs::read_dir(cluster.dir.path().join("server"))
        .unwrap()
        .filter_map(Result::ok)
        .any(|entry| entry.file_name().to_string_lossy().starts_with("usage-history.bin.damaged-"));
    assert!(moved, "the damaged file is kept aside");
    let empty = read().await.expect("the history after a damaged file");
    assert!(empty.points.is_empty(), "{:?}", empty.points);

    // A step that is not kept is refused, naming the ones that are.
    let bad = http.get(format!("{base}/v1/node/keep01/usage?step=5m")).send().await.unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("give step=1m or step=10s"));
}

/// Exec results stream into the page: on two nodes, one answers at once
/// and the other waits for a gate; the first node's output is on the page
/// (and the other still running) before the run ends, then both come
/// together under one grouped heading, as the CLI prints them.
#[tokio::test(flavor = "multi_thread")]
async fn exec_results_stream_into_the_page_as_each_node_answers() {
    if !browser_present() {
        return;
    }
    let mut cluster = Cluster::start().await;
    cluster.start_agents(&["run01".to_owned(), "run02".to_owned()], &[]).await;
    let base = format!("http://{}", cluster.addresses[0]);
    // Commands run as the agent's exec user: a directory that user may
    // write in.
    let shared = tempfile::Builder::new().prefix("drover-it-exec-").tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let gate = shared.path().join("gate");
    let first = shared.path().join("first");
    // Whichever node makes the directory first answers at once; the other
    // waits for the gate.
    let command = format!(
        "echo first-line; mkdir {first} 2>/dev/null || while [ ! -e {gate} ]; do sleep 0.1; done; echo second-line",
        first = first.display(),
        gate = gate.display()
    );

    let driver = Driver::start(false).await;
    driver.open(&format!("{base}/ui/exec")).await;
    driver.browser.find(Locator::Css("input[name=nodes]")).await.unwrap().send_keys("run01,run02").await.unwrap();
    driver.browser.find(Locator::Css("input[name=command]")).await.unwrap().send_keys(&command).await.unwrap();
    // Preview first: the nodes it would run on, nothing run yet.
    driver.browser.find(Locator::Css("#exec-select button[name=preview]")).await.unwrap().click().await.unwrap();
    let selection = driver.wait_for("the preview", Locator::Id("exec-selection")).await;
    assert_eq!(selection.text().await.unwrap(), "run{01..02}");
    assert!(!first.exists(), "a preview runs nothing");
    assert!(driver.text().await.contains("Runs on 2 nodes"));
    driver.screenshot("exec-preview").await;
    driver.browser.find(Locator::Css("#exec-form button")).await.unwrap().click().await.unwrap();
    driver
        .wait_for(
            "the first node's output while the other runs",
            Locator::XPath("//*[@id='exec-outcome']//pre[contains(., 'second-line')]"),
        )
        .await;
    let running = driver.text().await;
    assert!(!gate.exists());
    assert!(running.contains("1 of 2 nodes answered: 1 success"), "{running}");
    assert!(running.contains("Still running on"), "{running}");
    assert!(running.contains("first-line"), "{running}");
    driver.screenshot("exec-streaming").await;

    std::fs::write(&gate, "go").unwrap();
    driver.wait_for("the run to end", Locator::Css("#exec-outcome[data-done=true]")).await;
    let ended = driver.text().await;
    assert!(ended.contains("2 nodes: 2 success"), "{ended}");
    assert!(ended.contains("run{01..02} (2)"), "grouped as the CLI groups: {ended}");
    assert!(!ended.contains("Still running"), "{ended}");
    assert_eq!(driver.browser.current_url().await.unwrap().path(), "/ui/exec");
    driver.screenshot("exec-done").await;
    // And on a 4K screen (device pixels 1:1: the layout at its widest).
    driver.browser.set_window_size(3840, 2160).await.unwrap();
    driver.screenshot("exec-done-4k").await;
    driver.close().await;

    // The run is audited as its API call, from the dashboard.
    let audit = cluster.client.audit(&drover_proto::api::AuditQuery::default()).await.unwrap();
    assert!(
        audit.iter().any(|event| event.action == "exec.result" && event.details.contains("2 success")),
        "{audit:?}"
    );
}

/// The revert button: on an older version of a job, the page offers to
/// submit it again; the post goes through `POST /v1/job/{id}/revert` and
/// comes back to the job with the new version. A version that is not a
/// number, or a post without the page's CSRF token, changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_is_reverted_from_its_page() {
    let cluster = Cluster::start().await;
    let job = |count: u32| {
        format!(
            "job \"rev\" {{\n  type = \"batch\"\n  group \"g\" {{\n    count = {count}\n    task \"t\" {{\n      driver = \
             \"raw_exec\"\n      config {{\n        command = \"/bin/true\"\n      }}\n    }}\n  }}\n}}\n"
        )
    };
    for count in [1, 2] {
        let output = cluster.run_job("rev", &job(count));
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let current = cluster.client.job("rev").await.unwrap();
    assert_eq!(current.groups[0].count, 2);
    let older = current.version - 1;
    let base = format!("http://{}", cluster.address);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // The current version has no button; the older one has.
    let page = http.get(format!("{base}/ui/job/rev")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("Revert to version"), "{page}");
    let form = http.get(format!("{base}/ui/job/rev?version={older}")).send().await.unwrap();
    let cookie = form.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let form = form.text().await.unwrap();
    assert!(form.contains(&format!("Revert to version {older}</button>")), "{form}");
    let marker = r#"<meta name="drover-csrf" content=""#;
    let csrf = form[form.find(marker).unwrap() + marker.len()..].split('"').next().unwrap().to_owned();
    let post = |body: String| {
        http.post(format!("{base}/ui/job/rev/revert"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };

    let bad = post(format!("csrf={csrf}&version=latest")).await.unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("give the number of the version to revert to"));
    let forged = post(format!("version={older}")).await.unwrap();
    assert!(forged.status().is_client_error(), "{}", forged.status());
    assert_eq!(cluster.client.job("rev").await.unwrap().version, current.version, "nothing changed");

    let reverted = post(format!("csrf={csrf}&version={older}")).await.unwrap();
    assert_eq!(reverted.status(), reqwest::StatusCode::SEE_OTHER);
    let location = reverted.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/ui/job/rev?notice="), "{location}");
    let now = cluster.client.job("rev").await.unwrap();
    assert_eq!((now.version, now.groups[0].count), (current.version + 1, 1), "version {older} again");
    // Audited as the API call, from the dashboard.
    cluster
        .wait_for("the revert's audit event", || async {
            let audit = cluster.cli(&["audit", "--kind", "job.revert", "--outcome", "ok", "--json"]);
            let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
            audit.contains("/v1/job/rev/revert") && audit.contains("from the dashboard")
        })
        .await;
}
