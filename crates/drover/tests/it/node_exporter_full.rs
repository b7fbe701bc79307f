//! The Grafana dashboard "Node Exporter Full" against drover's series: a
//! real Prometheus scrapes a server with the recipe of docs/metrics.md, and
//! every selector of the dashboard's main rows (and of its template
//! variables), listed in tests/data/node_exporter_full_selectors.tsv, must
//! find series once the dashboard's variables are filled in as Grafana
//! fills them. Also: `/v1/metrics` answers gzip to a client that asks for
//! it, and the gzip decodes to the plain answer.

use std::sync::Mutex;
use std::time::Duration;

use drover_golden::needs;

use crate::harness::{Cluster, wait_until};

const SELECTORS: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/node_exporter_full_selectors.tsv"));

/// The rows every query of which must work (docs/metrics.md, "Node
/// Exporter Full", and "Storage Filesystem"); "Variables" are the
/// dashboard's `$job`, `$nodename` and `$node`.
const MAIN_ROWS: [&str; 4] =
    ["Variables", "Quick CPU / Mem / Disk", "Basic CPU / Mem / Net / Disk", "Storage Filesystem"];

/// Series of the main rows drover writes only when the node's kernel has
/// them, skipped by name when this machine's kernel does not (the docs list
/// them): pressure needs Linux 4.20 with PSI, irq pressure Linux 6.1 with
/// `CONFIG_IRQ_TIME_ACCOUNTING`.
const KERNEL_DEPENDENT: [(&str, &str); 4] = [
    ("node_pressure_cpu_waiting_seconds_total", "/proc/pressure/cpu"),
    ("node_pressure_memory_waiting_seconds_total", "/proc/pressure/memory"),
    ("node_pressure_io_waiting_seconds_total", "/proc/pressure/io"),
    ("node_pressure_irq_stalled_seconds_total", "/proc/pressure/irq"),
];

/// The dashboard's `$__rate_interval` as Grafana computes it for a 1 s
/// scrape interval and a short time range: at least four scrape intervals.
const RATE_INTERVAL: &str = "1m";

/// One line of the fixture.
#[derive(Debug, Clone)]
struct Selector {
    row: String,
    panel: String,
    /// `rate`, `-` or `label_values:LABEL`.
    usage: String,
    metric: String,
    matchers: String,
}

fn selectors() -> Vec<Selector> {
    SELECTORS
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 5, "tests/data/node_exporter_full_selectors.tsv: bad line {line:?}");
            Selector {
                row: fields[0].to_owned(),
                panel: fields[1].to_owned(),
                usage: fields[2].to_owned(),
                metric: fields[3].to_owned(),
                matchers: fields[4].to_owned(),
            }
        })
        .collect()
}

/// The dashboard's variables, as Grafana substitutes them.
struct Variables {
    job: String,
    nodename: String,
    node: String,
}

impl Selector {
    /// The PromQL Grafana would send for this selector: the variables
    /// substituted, wrapped in `rate(…[$__rate_interval])` where the
    /// dashboard takes a rate.
    fn promql(&self, variables: &Variables) -> String {
        let matchers = self
            .matchers
            .replace("$__rate_interval", RATE_INTERVAL)
            .replace("$nodename", &variables.nodename)
            .replace("$node", &variables.node)
            .replace("$job", &variables.job);
        let selector = format!("{}{}", self.metric, matchers);
        if self.usage == "rate" { format!("rate({selector}[{RATE_INTERVAL}])") } else { selector }
    }

    /// The label a template variable lists, for `label_values:LABEL`.
    fn listed_label(&self) -> Option<&str> {
        self.usage.strip_prefix("label_values:")
    }

    fn skipped_on_this_kernel(&self) -> bool {
        KERNEL_DEPENDENT.iter().any(|(metric, file)| self.metric == *metric && !std::path::Path::new(file).exists())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_exporter_full_dashboards_main_rows_find_drovers_series() {
    let prometheus = "prometheus";
    if !needs::are_met([needs::program(prometheus, "prometheus")]) {
        return;
    }
    let all = selectors();
    assert!(all.len() > 300, "the fixture lists the whole dashboard: {} selectors", all.len());
    let mut cluster = Cluster::start().await;
    cluster.start_agent("nef01", &["--hostgroup", "web", "--environment", "qa"]).await;
    let client = cluster.client.clone();
    cluster
        .wait_for("the node's first sample", || async {
            client.node("nef01").await.is_ok_and(|status| status.usage.is_some())
        })
        .await;

    // gzip: the same text, compressed, when the scraper asks for it.
    let url = format!("http://{}/v1/metrics?fleet=true", cluster.addresses[0]);
    let (plain, gzipped) = plain_and_gzip(&url).await;
    assert!(plain.contains("node_uname_info{node=\"nef01\""), "{plain}");
    assert_eq!(gzipped, plain, "the gzip answer decodes to the plain one");

    // The recipe of docs/metrics.md.
    let scrape = crate::harness::fleet_scrape_config(&cluster.addresses[0]);
    let prometheus = crate::harness::Prometheus::start(prometheus, cluster.dir.path(), &scrape);

    // The variables, from the dashboard's own queries: $job lists
    // node_uname_info's jobs, $nodename its nodenames, $node its instances.
    let uname = Mutex::new(Vec::new());
    wait_until(
        "Prometheus to scrape node_uname_info",
        Duration::from_secs(60),
        || async {
            let series = prometheus.query("node_uname_info").await.unwrap_or_default();
            let found = !series.is_empty();
            *uname.lock().unwrap() = series;
            found
        },
        || cluster.logs(),
    )
    .await;
    let uname = uname.into_inner().unwrap();
    let label = |name: &str| uname[0]["metric"][name].as_str().unwrap_or_default().to_owned();
    let variables = Variables { job: label("job"), nodename: label("nodename"), node: label("instance") };
    assert_eq!(variables.job, "drover", "honor_labels keeps the scrape job on node series");
    assert_eq!(variables.node, "nef01", "metric_relabel_configs made the node the instance");
    assert!(!variables.nodename.is_empty(), "{uname:?}");

    // Every selector of the main rows finds series (rates need two scrapes
    // in their window: wait for them).
    let main: Vec<&Selector> = all.iter().filter(|selector| MAIN_ROWS.contains(&selector.row.as_str())).collect();
    let skipped: Vec<&&Selector> = main.iter().filter(|selector| selector.skipped_on_this_kernel()).collect();
    let checked: Vec<&Selector> = main.iter().copied().filter(|selector| !selector.skipped_on_this_kernel()).collect();
    let failing = Mutex::new(Vec::<String>::new());
    wait_until(
        "every selector of the dashboard's main rows to find series",
        Duration::from_secs(90),
        || async {
            let mut now_failing = Vec::new();
            for selector in &checked {
                let promql = selector.promql(&variables);
                let series = prometheus.query(&promql).await.unwrap_or_default();
                let found = match selector.listed_label() {
                    Some(listed) => {
                        series.iter().any(|one| one["metric"][listed].as_str().is_some_and(|v| !v.is_empty()))
                    }
                    None => !series.is_empty(),
                };
                if !found {
                    now_failing.push(format!("{} / {}: {promql}", selector.row, selector.panel));
                }
            }
            let done = now_failing.is_empty();
            *failing.lock().unwrap() = now_failing;
            done
        },
        || format!("still empty:\n{}", failing.lock().unwrap().join("\n")),
    )
    .await;
    eprintln!(
        "{} selectors of the main rows found series; skipped on this kernel: {:?}",
        checked.len(),
        skipped.iter().map(|selector| selector.metric.as_str()).collect::<Vec<_>>()
    );

    // The other rows, for docs/metrics.md: how many of their selectors
    // find series (printed, not asserted; the docs say which work).
    let mut rows: Vec<(String, usize, usize, Vec<String>)> = Vec::new();
    for selector in all.iter().filter(|selector| !MAIN_ROWS.contains(&selector.row.as_str())) {
        let found = !prometheus.query(&selector.promql(&variables)).await.unwrap_or_default().is_empty();
        if rows.last().is_none_or(|(row, ..)| *row != selector.row) {
            rows.push((selector.row.clone(), 0, 0, Vec::new()));
        }
        let Some(row) = rows.last_mut() else { continue };
        row.2 += 1;
        if found {
            row.1 += 1;
        } else if !row.3.contains(&selector.metric) {
            row.3.push(selector.metric.clone());
        }
    }
    for (row, found, total, missing) in rows {
        eprintln!("{row}: {found} of {total} selectors find series; missing: {}", missing.join(" "));
    }
}

/// `/v1/metrics` asked plainly and with `Accept-Encoding: gzip` (decoded by
/// the real `gzip` program), between two plain answers that agree, so that
/// a new sample arriving in between cannot make them differ.
async fn plain_and_gzip(url: &str) -> (String, String) {
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let before = http.get(url).send().await.unwrap();
        assert_eq!(before.headers().get("content-encoding"), None, "no gzip unless asked");
        let before = before.text().await.unwrap();
        let response = http.get(url).header("accept-encoding", "gzip").send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let encoding = response.headers().get("content-encoding").and_then(|value| value.to_str().ok());
        assert_eq!(encoding, Some("gzip"));
        let compressed = response.bytes().await.unwrap();
        let after = http.get(url).send().await.unwrap().text().await.unwrap();
        if before == after {
            assert!(compressed.len() * 3 < before.len(), "{} bytes for {}", compressed.len(), before.len());
            return (before, gunzip(&compressed));
        }
    }
    panic!("/v1/metrics changed between every pair of plain answers");
}

fn gunzip(compressed: &[u8]) -> String {
    use std::io::Write;
    let mut gzip = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run gzip -dc");
    let mut stdin = gzip.stdin.take().unwrap();
    let compressed = compressed.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&compressed));
    let output = gzip.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "gzip -dc: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}
