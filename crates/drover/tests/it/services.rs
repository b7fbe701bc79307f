//! The service catalogue and the servers' DNS interface: a service with a
//! dynamic port on two agents, found by `drover service info` and by
//! `dig`, leaving DNS (and `drover service info --watch`) when its check
//! fails and coming back when it passes; queries outside the zone
//! forwarded to recursors (a real dnsmasq upstream).

use std::collections::BTreeSet;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use drover_golden::needs;
use drover_types::AllocClientStatus;

use crate::harness::{Cluster, Peer, drover_binary, free_dns_port, output_text};

/// Instances as (node name, port).
type Endpoints = BTreeSet<(String, u16)>;

/// Two HTTP servers on dynamic ports, one per node, each healthy while
/// the file `healthy-<alloc index>` exists in `marker_dir` (its script
/// check exits 2, critical, without it: exit 1 would be a warning, which
/// still counts as healthy).
fn shop_job(marker_dir: &std::path::Path) -> String {
    let markers = marker_dir.display();
    format!(
        r#"
job "shop" {{
  group "web" {{
    count = 2
    constraint {{
      operator = "distinct_hosts"
      value    = "true"
    }}
    network {{
      port "http" {{}}
    }}
    service {{
      name        = "shop"
      port        = "http"
      provider    = "nomad"
      tags        = ["v1", "${{NOMAD_ALLOC_INDEX}}"]
      meta {{
        team = "retail"
      }}
      check {{
        name     = "http"
        type     = "http"
        path     = "/"
        interval = "500ms"
        timeout  = "1s"
      }}
      check {{
        name     = "marker"
        type     = "script"
        command  = "/bin/sh"
        args     = ["-c", "test -f {markers}/healthy-$NOMAD_ALLOC_INDEX || exit 2"]
        interval = "500ms"
        timeout  = "1s"
      }}
    }}
    task "server" {{
      driver = "raw_exec"
      config {{
        command = "python3"
        args    = ["-m", "http.server", "--bind", "127.0.0.1", "${{NOMAD_PORT_http}}"]
      }}
      resources {{
        cpu    = 20
        memory = 32
      }}
    }}
  }}
}}
"#
    )
}

/// `dig @127.0.0.1 -p PORT +short [extra…] TYPE NAME`, one answer per line, sorted.
fn dig(port: u16, extra: &[&str], record_type: &str, name: &str) -> Vec<String> {
    let output = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+short", "+time=2", "+tries=1"])
        .args(extra)
        .args([record_type, name])
        .output()
        .expect("run dig");
    assert!(output.status.success(), "dig failed: {}", output_text(&output));
    let mut lines: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// dig's answer status line (`status: NXDOMAIN`).
fn dig_status(port: u16, record_type: &str, name: &str) -> String {
    let output = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=2", "+tries=1", record_type, name])
        .output()
        .expect("run dig");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.split("status: ").nth(1).and_then(|rest| rest.split(',').next()).unwrap_or(&text).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_is_found_by_the_cli_and_dns_and_leaves_dns_when_its_check_fails() {
    if !needs::are_met([needs::program("python3", "python3"), needs::program("dig", "bind9-dnsutils")]) {
        return;
    }
    let dns_port = free_dns_port();
    let dns_bind = format!("127.0.0.1:{dns_port}");
    let mut cluster = Cluster::start_servers_with(1, &["--dns-bind", &dns_bind, "--dns-ttl", "0"]).await;
    cluster.start_agents(&["n1".to_owned(), "n2".to_owned()], &[]).await;
    let markers = cluster.dir.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    for index in 0..2 {
        std::fs::write(markers.join(format!("healthy-{index}")), b"").unwrap();
    }
    let output = cluster.run_job("shop", &shop_job(&markers));
    assert!(output.status.success(), "{}", output_text(&output));
    let status = cluster.wait_for_allocs("shop", AllocClientStatus::Running, 2).await;

    // The ports the scheduler gave each allocation, by node.
    let mut expected: BTreeSet<(String, u16)> = BTreeSet::new();
    for entry in &status.allocs {
        let alloc = cluster.client.allocation(&entry.id.to_string()).await.unwrap();
        let port = alloc.ports.iter().find(|port| port.label == "http").expect("an http port").value;
        expected.insert((alloc.node_name.clone(), port));
    }
    assert_eq!(expected.len(), 2);

    // Both instances pass their checks: the catalogue lists them.
    cluster
        .wait_for("two healthy instances of shop", || async {
            cluster.client.service_instances("shop", None, true, None).await.is_ok_and(|(found, _)| found.len() == 2)
        })
        .await;
    let (instances, _) = cluster.client.service_instances("shop", None, false, None).await.unwrap();
    let listed: BTreeSet<(String, u16)> =
        instances.iter().map(|instance| (instance.node_name.clone(), instance.port.expect("a port"))).collect();
    assert_eq!(listed, expected, "the catalogue announces the allocated ports");
    assert!(instances.iter().all(|instance| instance.meta.get("team").map(String::as_str) == Some("retail")));

    let info = cluster.cli(&["service", "info", "shop"]);
    let info_text = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(info.status.success(), "{}", output_text(&info));
    for (node, port) in &expected {
        assert!(info_text.contains(node.as_str()) && info_text.contains(&port.to_string()), "{info_text}");
    }
    let list = cluster.cli(&["service", "list"]);
    let list_text = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.status.success() && list_text.contains("shop") && list_text.contains("v1"), "{}", output_text(&list));
    let tagged = cluster.cli(&["service", "info", "shop", "--tag", "0", "--json"]);
    let tagged: Vec<serde_json::Value> = serde_json::from_slice(&tagged.stdout).expect("JSON instances");
    assert_eq!(tagged.len(), 1, "the tag interpolated from NOMAD_ALLOC_INDEX picks one instance");
    let unknown = cluster.cli(&["service", "info", "shpo"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("did you mean \"shop\""), "{}", output_text(&unknown));

    // DNS: SRV with the ports and the nodes as targets, over UDP and TCP.
    let srv_of = |answers: Vec<String>| -> BTreeSet<(String, u16)> {
        answers
            .iter()
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                assert_eq!(fields.len(), 4, "an SRV answer: {line}");
                let node = fields[3].trim_end_matches(".node.drover.").to_owned();
                (node, fields[2].parse().expect("a port"))
            })
            .collect()
    };
    assert_eq!(srv_of(dig(dns_port, &[], "SRV", "_shop._tcp.service.drover")), expected);
    assert_eq!(srv_of(dig(dns_port, &["+tcp"], "SRV", "_shop._tcp.service.drover")), expected);
    assert_eq!(dig(dns_port, &[], "SRV", "1.shop.service.drover").len(), 1, "TAG.NAME narrows to one");
    assert!(!dig(dns_port, &[], "A", "shop.service.drover").is_empty());
    assert_eq!(dig(dns_port, &[], "A", "n1.node.drover").len(), 1);
    assert_eq!(dig_status(dns_port, "A", "nothing.service.drover"), "NXDOMAIN");
    assert_eq!(dig_status(dns_port, "A", "example.com"), "REFUSED");

    // A watch of the healthy instances: one JSON array a line, each time
    // the set changes.
    let mut watch = Command::new(drover_binary())
        .args(["service", "info", "shop", "--healthy", "--watch", "--json"])
        .env("DROVER_ADDR", &cluster.address)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start drover service info --watch");
    let watch_stdout = watch.stdout.take().expect("the watch's stdout");
    let _watch = Peer(watch);
    let watched: Arc<Mutex<Vec<Endpoints>>> = Arc::default();
    let watched_writer = watched.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(watch_stdout).lines().map_while(Result::ok) {
            let instances: Vec<serde_json::Value> = serde_json::from_str(&line).expect("one JSON array a line");
            let set = instances
                .iter()
                .map(|instance| {
                    let node = instance["node_name"].as_str().expect("a node name").to_owned();
                    (node, u16::try_from(instance["port"].as_u64().expect("a port")).expect("a port number"))
                })
                .collect();
            watched_writer.lock().unwrap().push(set);
        }
    });
    let watched_last = || watched.lock().unwrap().last().cloned();
    cluster
        .wait_for("the watch to print both instances", || async { watched_last().as_ref() == Some(&expected) })
        .await;

    // The check of instance 0 fails: it leaves DNS and the watch, and comes back.
    let failing_node = instances
        .iter()
        .find(|instance| instance.tags.contains(&"0".to_owned()))
        .map(|instance| instance.node_name.clone())
        .expect("instance 0");
    std::fs::remove_file(markers.join("healthy-0")).unwrap();
    let remaining: BTreeSet<(String, u16)> =
        expected.iter().filter(|(node, _)| *node != failing_node).cloned().collect();
    cluster
        .wait_for("the failing instance to leave DNS", || async {
            srv_of(dig(dns_port, &[], "SRV", "_shop._tcp.service.drover")) == remaining
        })
        .await;
    cluster
        .wait_for("the watch to print the instance leaving", || async { watched_last().as_ref() == Some(&remaining) })
        .await;
    let (healthy, _) = cluster.client.service_instances("shop", None, true, None).await.unwrap();
    assert_eq!(healthy.len(), 1);
    let (all, _) = cluster.client.service_instances("shop", None, false, None).await.unwrap();
    assert_eq!(all.len(), 2, "a failing instance stays in the catalogue, critical");

    std::fs::write(markers.join("healthy-0"), b"").unwrap();
    cluster
        .wait_for("the instance to return to DNS", || async {
            srv_of(dig(dns_port, &[], "SRV", "_shop._tcp.service.drover")) == expected
        })
        .await;
    cluster
        .wait_for("the watch to print the instance returning", || async { watched_last().as_ref() == Some(&expected) })
        .await;
    let printed = watched.lock().unwrap().clone();
    assert!(printed.windows(2).all(|pair| pair[0] != pair[1]), "the watch prints only changes: {printed:?}");

    // Stopping the job empties the catalogue.
    let stop = cluster.cli(&["job", "stop", "shop"]);
    assert!(stop.status.success(), "{}", output_text(&stop));
    cluster
        .wait_for("the service to leave DNS", || async {
            dig_status(dns_port, "SRV", "_shop._tcp.service.drover") == "NXDOMAIN"
        })
        .await;
}

/// A dnsmasq on 127.0.0.1:`port` answering from `hosts` and the records
/// `extra` gives, with no upstream of its own, killed when dropped.
fn start_dnsmasq(dir: &std::path::Path, port: u16, hosts: &str, extra: &[String]) -> Peer {
    let hosts_file = dir.join("dnsmasq-hosts");
    std::fs::write(&hosts_file, hosts).unwrap();
    let process = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--pid-file=",
            "--user=root",
        ])
        .arg(format!("--addn-hosts={}", hosts_file.display()))
        .arg(format!("--port={port}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq");
    Peer(process)
}

/// dig's whole answer text.
fn dig_text(port: u16, extra: &[&str], record_type: &str, name: &str) -> String {
    let output = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=3", "+tries=1"])
        .args(extra)
        .args([record_type, name])
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_outside_the_zone_go_to_the_recursors_in_order_and_over_tcp_when_truncated() {
    if !needs::are_met([needs::program("dig", "bind9-dnsutils"), needs::program("dnsmasq", "dnsmasq-base")]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let upstream_port = free_dns_port();
    // A TXT record of 6 × 200 bytes: more than the 512 bytes dnsmasq
    // answers over UDP (--edns-packet-max), whole over TCP.
    let big = vec!["x".repeat(200); 6].join(",");
    let _upstream = start_dnsmasq(
        dir.path(),
        upstream_port,
        "192.0.2.77 host.example\n",
        &[
            // Authoritative for example.: unknown names are NXDOMAIN.
            "--local=/example/".to_owned(),
            "--edns-packet-max=512".to_owned(),
            format!("--txt-record=big.example,{big}"),
            "--srv-host=_web._tcp.example,n1.example,20001".to_owned(),
        ],
    );
    // dnsmasq refuses connections until it has bound its port: ask until it answers.
    let ready = || dig_text(upstream_port, &["+short"], "A", "host.example").trim() == "192.0.2.77";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "dnsmasq did not answer on port {upstream_port}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The first recursor listens on nothing (refused at once): the second answers.
    let nobody = format!("127.0.0.1:{}", free_dns_port());
    let upstream = format!("127.0.0.1:{upstream_port}");
    let dns_port = free_dns_port();
    let dns_bind = format!("127.0.0.1:{dns_port}");
    let _cluster = Cluster::start_servers_with(
        1,
        &["--dns-bind", &dns_bind, "--dns-recursor", &nobody, "--dns-recursor", &upstream],
    )
    .await;
    let forwarded = || dig_text(dns_port, &["+short"], "A", "host.example").trim() == "192.0.2.77";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !forwarded() {
        assert!(std::time::Instant::now() < deadline, "drover's DNS did not forward host.example within 20 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    assert_eq!(dig(dns_port, &[], "A", "host.example"), ["192.0.2.77"], "forwarded over UDP");
    assert_eq!(dig(dns_port, &["+tcp"], "A", "host.example"), ["192.0.2.77"], "forwarded from a TCP client");
    assert_eq!(dig(dns_port, &[], "SRV", "_web._tcp.example"), ["0 0 20001 n1.example."]);
    assert_eq!(dig_status(dns_port, "A", "missing.example"), "NXDOMAIN", "the upstream's answer is passed on");
    assert_eq!(dig_status(dns_port, "A", "nothing.service.drover"), "NXDOMAIN", "drover's zone stays drover's");

    // Truncated by the upstream over UDP: drover asks again over TCP and
    // gives the whole answer to a client that takes 4096 bytes (+ignore:
    // dig would retry over TCP itself on a truncated answer).
    let whole = dig_text(dns_port, &["+ignore", "+bufsize=4096"], "TXT", "big.example");
    assert!(!whole.contains(" tc "), "no truncation flag: {whole}");
    assert_eq!(whole.matches(&"x".repeat(200)).count(), 6, "the whole TXT record: {whole}");
    // A client that takes 512 bytes gets the truncated answer and retries over TCP.
    let small = dig_text(dns_port, &["+ignore", "+noedns"], "TXT", "big.example");
    assert!(small.contains(" tc "), "truncated for a 512-byte client: {small}");
    let retried = dig_text(dns_port, &["+noedns"], "TXT", "big.example");
    assert_eq!(retried.matches(&"x".repeat(200)).count(), 6, "dig's TCP retry gets it whole: {retried}");
}
