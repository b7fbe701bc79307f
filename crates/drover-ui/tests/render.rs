//! The pages rendered from view models: what an operator must see is
//! there, what a token may not do has no button, and text from the fleet
//! is escaped.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};

use drover_proto::api::{
    AllocCounts, AllocListEntry, JobStatusResponse, LogBucket, LogCount, LogCountResponse, LogHistogramResponse,
    LogSearchResponse, NodeListEntry,
};
use drover_types::usage::UsageSummary;
use drover_types::{EvalStatus, EvalTrigger, Evaluation, JobId, NodeId, PlacementFailure, Timestamp, fixtures};
use drover_ui::pages::Visible;
use drover_ui::pages::jobs::{AllocView, JobPage};
use drover_ui::pages::logs::LogsPage;
use drover_ui::pages::nodes::{NodeSort, NodeTable, NodesPage, group_tree};
use drover_ui::pages::overview::{self, OverviewPage};
use drover_ui::pages::react::{AlertRow, AlertsPage, HammersPage, RunRow, SilenceRow};
use drover_ui::{Chrome, Section, render};

const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn chrome(section: Section) -> Chrome {
    let mut chrome = Chrome::new("Test", section, NOW);
    chrome.user = "alice".to_owned();
    chrome.logged_in = true;
    chrome.csrf = "c5rf".to_owned();
    chrome
}

fn node_entry(name: &str, hostgroup: &str, status: &str, used_cpu: u64) -> NodeListEntry {
    let node = fixtures::node(name);
    NodeListEntry {
        id: node.id.clone(),
        name: name.to_owned(),
        status: status.to_owned(),
        hostgroup: hostgroup.to_owned(),
        environment: "qa".to_owned(),
        owner: String::new(),
        zone: "dc1".to_owned(),
        protected: false,
        resources: node.resources,
        used: drover_types::Resources { cpu_mhz: used_cpu, memory_mb: 0 },
        num_allocs: 0,
        attributes: node.attributes.clone(),
        agent_version: "0.1.0".to_owned(),
        last_heartbeat: None,
    }
}

fn empty_overview() -> OverviewPage {
    OverviewPage {
        chrome: chrome(Section::Overview),
        servers: Visible::Shown(Vec::new()),
        problems: Vec::new(),
        nodes: Visible::Shown(overview::node_counts(["ready", "ready"])),
        allocs: Visible::Shown(overview::alloc_counts(&AllocCounts::default())),
        alerts: Visible::Shown(Vec::new()),
        awaiting: Visible::Shown(Vec::new()),
        deployments: Visible::Shown(Vec::new()),
        audit: Visible::Hidden("alice may not do this: needs acl { capabilities = [\"read\"] }".to_owned()),
    }
}

fn alert(name: &str, state: &str) -> AlertRow {
    AlertRow {
        id: format!("{name}-1"),
        name: name.to_owned(),
        state: state.to_owned(),
        severity: "critical".to_owned(),
        summary: "node=batch07".to_owned(),
        since: "5m ago".to_owned(),
        runbook: Some(AlertRow::runbook_href(name, "runbooks/disk.md")),
        acknowledged_by: String::new(),
        acknowledged: false,
        silenced_by: String::new(),
        matchers: vec![format!("alertname={name:?}"), r#"node="batch07""#.to_owned()],
    }
}

fn run(id: u64, state: &str) -> RunRow {
    RunRow {
        id,
        hammer: "reboot".to_owned(),
        target: "batch07".to_owned(),
        state: state.to_owned(),
        when: "1m ago".to_owned(),
        detail: "node down".to_owned(),
        decided_by: String::new(),
    }
}

#[test]
fn the_overview_says_all_is_fine_when_it_is_and_names_what_the_token_may_not_see() {
    let html = render(&empty_overview());
    assert!(html.contains("Everything this token can see is fine."), "{html}");
    assert!(html.contains("alice may not do this: needs acl"), "{html}");
    assert!(html.contains(r#"<span class="n">2</span><span class="what">ready</span>"#), "{html}");
}

#[test]
fn the_overview_puts_what_needs_a_human_first_worst_first() {
    let mut page = empty_overview();
    page.nodes = Visible::Shown(overview::node_counts(["ready", "down", "down"]));
    page.alerts = Visible::Shown(vec![alert("disk_full", "firing"), alert("slow", "pending")]);
    page.awaiting = Visible::Shown(vec![run(7, "awaiting_approval")]);
    page.problems = vec!["server 2 did not answer".to_owned()];
    let attention: Vec<String> =
        page.attention().into_iter().map(|item| format!("{} {}", item.class, item.text)).collect();
    assert_eq!(
        attention,
        [
            "bad Cluster: server 2 did not answer",
            "bad Alert disk_full is firing: node=batch07",
            "bad 2 nodes down",
            "warn Hammer reboot on batch07 awaits approval (run 7)",
            "warn Alert slow is pending: node=batch07",
        ]
    );
    let html = render(&page);
    let attention_at = html.find("Needs a human").unwrap();
    let servers_at = html.find(">Servers<").unwrap();
    assert!(attention_at < servers_at, "the attention list comes first");
    assert!(html.contains(r#"<a href="/ui/runbook/disk_full">runbook</a>"#), "{html}");
    assert!(!html.contains("Everything this token can see is fine."));
}

#[test]
fn the_node_table_keeps_the_filter_shows_its_error_and_counts_host_groups() {
    let entries = [
        node_entry("batch01", "bi/batch/a", "ready", 2000),
        node_entry("batch02", "bi/batch/b", "down", 100),
        node_entry("web01", "web", "ready", 0),
    ];
    let filter = r#"hostgroup =~ "bi/**" and name == "<x>""#.to_owned();
    let mut page = NodesPage::new(chrome(Section::Nodes), filter, NodeSort::Cpu, &entries);
    page.error = Some("bad filter: unexpected end at column 9\nsee docs/nodes.md".to_owned());
    let html = render(&page);
    assert!(html.contains(r#"value="hostgroup =~ &#34;bi/**&#34; and name == &#34;&#60;x&#62;&#34;""#), "{html}");
    assert!(html.contains("bad filter: unexpected end at column 9"), "{html}");
    let batch01 = html.find(">batch01<").unwrap();
    let batch02 = html.find(">batch02<").unwrap();
    assert!(batch01 < batch02, "sorted by CPU, fullest first");
    assert!(html.contains(r#"href="/ui/node/batch01""#));
    let tree: Vec<(String, usize, usize)> = group_tree(entries.iter().map(|node| node.hostgroup.as_str()))
        .into_iter()
        .map(|group| (group.label, group.depth, group.count))
        .collect();
    assert_eq!(
        tree,
        [
            ("bi".to_owned(), 0, 2),
            ("batch".to_owned(), 1, 2),
            ("a".to_owned(), 2, 1),
            ("b".to_owned(), 2, 1),
            ("web".to_owned(), 0, 1)
        ]
    );
}

fn job_status(placement: Option<PlacementFailure>) -> JobStatusResponse {
    let job = fixtures::service_job("api", 3);
    let mut eval =
        Evaluation::new(drover_types::EvalId::new("eval-7f3a9"), JobId::new("api"), 50, EvalTrigger::JobRegister, NOW);
    eval.status = EvalStatus::Blocked;
    if let Some(failure) = placement {
        eval.failed_placements.insert(job.groups[0].name.clone(), failure);
    }
    let node = NodeId::new("batch01");
    let mut alloc = fixtures::alloc("alloc-0001", "api", &job.groups[0].name, &node);
    alloc.client_status = drover_types::AllocClientStatus::Running;
    JobStatusResponse {
        job,
        deployment: None,
        children: Vec::new(),
        summary: BTreeMap::new(),
        allocs: vec![AllocListEntry::from(&alloc)],
        evals: vec![eval],
    }
}

#[test]
fn the_job_page_says_in_words_why_a_group_is_not_placed() {
    let failure = PlacementFailure {
        num_unplaced: 2,
        nodes_evaluated: 5,
        constraint_filtered: [("${node.hostgroup} glob belle2/daq/**".to_owned(), 3)].into_iter().collect(),
        nodes_exhausted: 2,
        dimension_exhausted: [("memory".to_owned(), 2)].into_iter().collect(),
        ..PlacementFailure::default()
    };
    let status = job_status(Some(failure));
    let mut older = status.job.clone();
    older.version = 0;
    let mut current = status.job.clone();
    current.version = 1;
    current.groups[0].count = 3;
    older.groups[0].count = 1;
    let mut status = status;
    status.job = current.clone();
    let page = JobPage::new(chrome(Section::Jobs), &status, &[current, older], None, None);
    let html = render(&page);
    assert!(
        html.contains("2 could not be placed; 5 nodes evaluated: 3 filtered by constraint ${node.hostgroup} glob belle2/daq/**, 2 out of memory"),
        "{html}"
    );
    assert!(html.contains(r#"href="/ui/job/api?version=0""#), "{html}");
    assert!(html.contains("compared with version 0"), "{html}");
    assert!(html.contains("count: 1 =&#62; 3"), "the diff of the two versions: {html}");
    assert!(html.contains(r#"href="/ui/alloc/alloc-0001""#), "{html}");
}

#[test]
fn the_job_page_shows_the_newest_allocations_of_each_state_and_pages_through_one_state() {
    let mut status = job_status(None);
    let node = NodeId::new("batch01");
    status.allocs = (0..450_i64)
        .map(|index| {
            let mut alloc = fixtures::alloc(&format!("alloc-{index:04}"), "api", "web", &node);
            alloc.client_status = drover_types::AllocClientStatus::Running;
            alloc.modify_time = Timestamp::from_millis(1_000_000 + index * 1000);
            AllocListEntry::from(&alloc)
        })
        .collect();
    let html = render(&JobPage::new(chrome(Section::Jobs), &status, std::slice::from_ref(&status.job), None, None));
    assert!(
        html.contains("newest 50 shown")
            && html.contains("/ui/alloc/alloc-0449\"")
            && !html.contains("/ui/alloc/alloc-0399\"")
    );
    assert!(html.contains(r#"href="/ui/job/api?state=running">all 450 running →"#), "{html}");

    let view = AllocView { state: Some("running".to_owned()), page: 2 };
    let html =
        render(&JobPage::listing(chrome(Section::Jobs), &status, std::slice::from_ref(&status.job), None, None, &view));
    assert!(
        html.contains("201–400 shown")
            && html.contains("/ui/alloc/alloc-0249\"")
            && html.contains("/ui/alloc/alloc-0050\"")
    );
    assert!(!html.contains("/ui/alloc/alloc-0250\"") && !html.contains("/ui/alloc/alloc-0049\""), "{html}");
    assert!(html.contains(r#"href="/ui/job/api?state=running" rel="prev""#), "{html}");
    assert!(html.contains(r#"href="/ui/job/api?state=running&#38;page=3" rel="next""#), "{html}");
    assert!(html.contains(r#"<a href="/ui/job/api">all states</a>"#), "{html}");
    let view = AllocView { state: Some("failed".to_owned()), page: 1 };
    let html =
        render(&JobPage::listing(chrome(Section::Jobs), &status, std::slice::from_ref(&status.job), None, None, &view));
    assert!(html.contains("No allocation in this state."), "{html}");
}

#[test]
fn the_job_page_without_trouble_has_no_placement_section() {
    let status = job_status(None);
    let page = JobPage::new(chrome(Section::Jobs), &status, std::slice::from_ref(&status.job), None, None);
    let html = render(&page);
    assert!(!html.contains("Not placed, and why"), "{html}");
    assert!(!html.contains("Promote canaries"));
}

#[test]
fn the_log_page_draws_bars_that_zoom_marks_the_words_and_pages_by_cursor() {
    let page = LogsPage::new(chrome(Section::Logs), "disk full".to_owned(), "1h".to_owned(), String::new());
    let record = drover_types::LogRecord {
        origin: "batch07".to_owned(),
        seq: 1,
        timestamp: 1_800_000_000_000_000_000,
        received: 1_800_000_000_000_000_000,
        node: "batch07".to_owned(),
        hostgroup: None,
        environment: None,
        job: None,
        group: None,
        task: None,
        alloc: None,
        source: "file".to_owned(),
        stream: "/var/log/syslog".to_owned(),
        level: Some("error".to_owned()),
        message: "Disk <full> on /data".to_owned(),
        fields: BTreeMap::new(),
    };
    let search = LogSearchResponse {
        records: vec![record],
        next_cursor: Some("c-2".to_owned()),
        total_matching: 250,
        ..LogSearchResponse::default()
    };
    let minute = 60_000_000_000;
    let histogram = LogHistogramResponse {
        interval_nanos: minute,
        buckets: vec![
            LogBucket { start: 1_800_000_000_000_000_000, count: 200 },
            LogBucket { start: 1_800_000_000_000_000_000 + minute, count: 0 },
            LogBucket { start: 1_800_000_000_000_000_000 + 2 * minute, count: 50 },
        ],
        ..LogHistogramResponse::default()
    };
    let page = page.with_results(&search, &histogram, &["disk".to_owned(), "full".to_owned()], false);
    let html = render(&page);
    assert!(
        html.contains(r#"href="/ui/logs?q=disk%20full&#38;since=1800000000000000000&#38;until=1800000060000000000""#),
        "a bar links to its bucket: {html}"
    );
    assert!(html.contains(r#"style="height:100%""#) && html.contains(r#"style="height:25%""#), "{html}");
    assert!(html.contains("<mark>Disk</mark> &#60;<mark>full</mark>&#62; on /data"), "{html}");
    assert!(html.contains(r#"cursor=c-2""#) && html.contains("older lines"), "{html}");
    assert!(html.contains("250 matching lines"));
}

#[test]
fn the_node_table_shows_two_hundred_nodes_a_page_with_links_that_keep_filter_and_sort() {
    let entries: Vec<NodeListEntry> =
        (0..450).map(|index| node_entry(&format!("n{index:04}"), "bi/batch", "ready", 0)).collect();
    let filter = "hostgroup == \"bi/batch\"".to_owned();
    let first = render(&NodesPage::new(chrome(Section::Nodes), filter.clone(), NodeSort::Name, &entries));
    assert!(first.contains("1–200 of 450 shown") && first.contains(">n0199</a>") && !first.contains(">n0200</a>"));
    assert!(
        first.contains(
            r#"href="/ui/nodes?filter=hostgroup%20%3D%3D%20%22bi%2Fbatch%22&#38;sort=name&#38;page=2" rel="next""#
        ),
        "{first}"
    );
    assert!(!first.contains(r#"rel="prev""#));
    assert!(first.contains(r#"<span class="count">450</span>"#), "the tree counts every page: {first}");
    let unmeasured = HashMap::new();
    let table = NodeTable { entries: &entries, usage: &unmeasured };
    let last = render(&NodesPage::on_page(chrome(Section::Nodes), filter.clone(), NodeSort::Name, table, 9));
    assert!(last.contains("401–450 of 450 shown") && last.contains(">n0449</a>"), "past the end: the last page");
    assert!(last.contains("sort=name&#38;page=2\" rel=\"prev\""), "{last}");
    assert!(!last.contains(r#"rel="next""#));
    let second = render(&NodesPage::on_page(chrome(Section::Nodes), filter, NodeSort::Name, table, 2));
    assert!(second.contains(r#"sort=name" rel="prev""#), "page 1 has no page parameter: {second}");
    let few = render(&NodesPage::new(chrome(Section::Nodes), String::new(), NodeSort::Name, &entries[..3]));
    assert!(few.contains("3 shown") && !few.contains("Pages of the node table"));
}

#[test]
fn the_node_table_shows_and_sorts_by_measured_use_with_unmeasured_nodes_last() {
    let entries: Vec<NodeListEntry> =
        ["quiet", "busy", "gone", "full"].iter().map(|name| node_entry(name, "bi/batch", "ready", 0)).collect();
    let summary = |cpu: f32, memory: f32, disk: f32| UsageSummary {
        time_ms: 1_800_000_000_000 - 30_000,
        cpu_percent: cpu,
        memory_percent: Some(memory),
        disk_percent: Some(disk),
    };
    let usage: HashMap<NodeId, UsageSummary> = [
        (entries[0].id.clone(), summary(3.0, 20.0, 10.0)),
        (entries[1].id.clone(), summary(97.4, 40.0, 20.0)),
        (entries[3].id.clone(), summary(50.0, 90.0, 99.6)),
    ]
    .into_iter()
    .collect();
    let table = NodeTable { entries: &entries, usage: &usage };
    let order = |sort: &str| {
        let html = render(&NodesPage::on_page(chrome(Section::Nodes), String::new(), NodeSort::parse(sort), table, 1));
        let mut names: Vec<(usize, &str)> = ["quiet", "busy", "gone", "full"]
            .iter()
            .map(|name| (html.find(&format!(">{name}</a>")).unwrap(), *name))
            .collect();
        names.sort();
        (names.into_iter().map(|(_, name)| name).collect::<Vec<_>>(), html)
    };
    assert_eq!(order("cpu-used").0, ["busy", "full", "quiet", "gone"]);
    assert_eq!(order("memory-used").0, ["full", "busy", "quiet", "gone"]);
    let (disk, html) = order("disk-used");
    assert_eq!(disk, ["full", "busy", "quiet", "gone"]);
    assert!(html.contains(r#"<td class="num" title="measured 30s ago">97%</td>"#), "{html}");
    assert!(html.contains(r#"title="no sample: its agent is not connected">–</td>"#), "{html}");
    assert!(html.contains(r#"<th class="num" aria-sort="descending"><a href="/ui/nodes?sort=disk-used""#), "{html}");
}

#[test]
fn the_count_panel_links_each_value_to_the_narrowed_query_and_every_link_keeps_the_field() {
    let page = LogsPage::new(chrome(Section::Logs), "disk full".to_owned(), "6h".to_owned(), String::new())
        .counting_by("node");
    let search = LogSearchResponse { next_cursor: Some("c-2".to_owned()), ..LogSearchResponse::default() };
    let histogram = LogHistogramResponse {
        interval_nanos: 60_000_000_000,
        buckets: vec![LogBucket { start: 1_800_000_000_000_000_000, count: 3 }],
        ..LogHistogramResponse::default()
    };
    let counts = LogCountResponse {
        by: "node".to_owned(),
        counts: vec![
            LogCount { value: "batch07".to_owned(), count: 40 },
            LogCount { value: r#"we"ird"#.to_owned(), count: 10 },
        ],
        ..LogCountResponse::default()
    };
    let page = page.with_results(&search, &histogram, &[], false).with_counts(&counts);
    let html = render(&page);
    // `(disk full) AND node:"batch07"`, the same range, still counted by node.
    assert!(
        html.contains(
            r#"href="/ui/logs?q=%28disk%20full%29%20AND%20node%3A%22batch07%22&#38;since=6h&#38;count_by=node""#
        ),
        "{html}"
    );
    assert!(html.contains(r#"node%3A%22we%5C%22ird%22"#), "a quote in a value is escaped in the query: {html}");
    assert!(html.contains(r#"style="width:100%""#) && html.contains(r#"style="width:25%""#), "{html}");
    assert!(html.contains(r#"<option value="node" selected>"#), "{html}");
    assert!(html.contains("count_by=node&#38;cursor=c-2"), "the next page keeps the field: {html}");
    assert!(html.contains("until=1800000060000000000&#38;count_by=node"), "a bar keeps the field: {html}");
    assert!(html.contains(r#"<input type="hidden" name="count_by" value="node">"#), "the search keeps it: {html}");
    // The live tail: hidden until the script shows it, reading /ui/logs/tail.
    assert!(html.contains(r#"id="tail-toggle" hidden"#), "{html}");
    assert!(html.contains(r#"data-tail="/ui/logs/tail?q=disk%20full""#), "{html}");

    assert_eq!(drover_ui::pages::logs::narrowed("", "level", "error"), r#"level:"error""#);
    assert_eq!(drover_ui::pages::logs::narrowed(" a OR b ", "job", r"x\y"), r#"(a OR b) AND job:"x\\y""#);
}

#[test]
fn the_count_panel_names_a_field_of_the_url_and_shows_a_refusal_next_to_the_lines() {
    let mut page =
        LogsPage::new(chrome(Section::Logs), String::new(), "1h".to_owned(), String::new()).counting_by("user");
    page.count_error = Some("cannot count by message".to_owned());
    let html = render(&page);
    assert!(html.contains(r#"<option value="user" selected>user</option>"#), "{html}");
    assert!(html.contains("cannot count by message") && html.contains("matching lines"), "{html}");
    let html = render(&LogsPage::new(chrome(Section::Logs), String::new(), "1h".to_owned(), String::new()));
    assert!(html.contains("Pick a field") && html.contains(r#"<option value="" selected>"#), "{html}");
}

fn alerts_page(can_silence: bool) -> AlertsPage {
    AlertsPage {
        chrome: chrome(Section::Alerts),
        alerts: vec![alert("disk-full", "firing")],
        silences: vec![SilenceRow {
            id: "s1".to_owned(),
            matchers: r#"alertname="tmp-full""#.to_owned(),
            ends: "in 2h".to_owned(),
            author: "bob".to_owned(),
            comment: "rebuilding".to_owned(),
        }],
        top: Vec::new(),
        can_ack: can_silence,
        can_silence,
        silence_matchers: "alertname=\"disk-full\"\nnode=\"batch07\"".to_owned(),
        notice: None,
    }
}

#[test]
fn silence_and_expire_forms_carry_the_csrf_token_and_are_absent_without_the_right() {
    let html = render(&alerts_page(true));
    assert!(html.contains(r#"action="/ui/alerts/silence""#), "{html}");
    assert!(html.contains(r#"action="/ui/silence/s1/expire""#), "{html}");
    assert_eq!(html.matches(r#"name="csrf" value="c5rf""#).count(), 4, "ack, expire, silence, logout: {html}");
    // The alert's link fills the form with its labels; the form shows them.
    assert!(
        html.contains(r#"href="/ui/alerts?silence=alertname%3D%22disk-full%22%0Anode%3D%22batch07%22#new-silence""#),
        "{html}"
    );
    assert!(html.contains("alertname=&#34;disk-full&#34;\nnode=&#34;batch07&#34;</textarea>"), "{html}");

    let html = render(&alerts_page(false));
    assert!(!html.contains("/ui/alerts/silence") && !html.contains("/expire") && !html.contains("Silence…"), "{html}");
    assert!(html.contains("rebuilding"), "the silences are still listed: {html}");
}

#[test]
fn a_log_query_that_does_not_parse_shows_the_cli_message_and_no_results() {
    let mut page = LogsPage::new(chrome(Section::Logs), "(hello".to_owned(), "1h".to_owned(), String::new());
    page.error =
        Some("bad query: unbalanced parenthesis at column 1: add \")\" to close it\nsee docs/logs.md".to_owned());
    let html = render(&page);
    assert!(html.contains("unbalanced parenthesis at column 1: add &#34;)&#34; to close it"), "{html}");
    assert!(!html.contains("matching lines"));
}

#[test]
fn approve_and_deny_buttons_carry_the_csrf_token_and_are_absent_without_the_right() {
    let page = HammersPage {
        chrome: chrome(Section::Hammers),
        hammers: Vec::new(),
        awaiting: vec![run(7, "awaiting_approval")],
        history: vec![run(7, "awaiting_approval")],
        can_decide: true,
        notice: None,
    };
    let html = render(&page);
    assert!(html.contains(r#"action="/ui/hammers/run/7/approve""#), "{html}");
    assert!(html.contains(r#"action="/ui/hammers/run/7/deny""#), "{html}");
    assert!(html.contains(r#"name="csrf" value="c5rf""#), "{html}");
    let page = HammersPage { can_decide: false, ..page };
    let html = render(&page);
    assert!(!html.contains("/approve") && !html.contains(">Approve<"), "{html}");
    assert!(html.contains("this token may not approve"));
}

#[test]
fn text_from_the_fleet_is_escaped() {
    let entries = [node_entry("<script>alert(1)</script>", "x", "ready", 0)];
    let html = render(&NodesPage::new(chrome(Section::Nodes), String::new(), NodeSort::Name, &entries));
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
}

#[test]
fn every_page_links_the_embedded_stylesheet_and_marks_its_section() {
    let html = render(&empty_overview());
    assert!(html.contains(r#"<link rel="stylesheet" href="/ui/assets/style.css?v="#), "{html}");
    assert!(html.contains(r#"<a href="/ui/" aria-current="page">Overview</a>"#), "{html}");
    assert!(html.contains("Log out"));
}

#[test]
fn the_node_page_draws_its_usage_of_the_last_day_as_inline_svg() {
    use drover_proto::api::{NodeStatusResponse, UsagePoint};
    use drover_ui::pages::nodes::NodePage;
    let status = NodeStatusResponse {
        node: fixtures::node("db01"),
        used: drover_types::Resources::default(),
        allocs: Vec::new(),
        last_heartbeat: None,
        usage: None,
    };
    let points: Vec<UsagePoint> = (1..=120)
        .map(|minute| UsagePoint {
            time_ms: NOW.as_millis() - minute * 60_000,
            cpu_percent: Some(if minute == 30 { 95.0 } else { 20.0 }),
            memory_percent: Some(40.0),
            ..UsagePoint::default()
        })
        .rev()
        .collect();
    let page = NodePage::new(
        chrome(Section::Nodes),
        &status,
        Visible::Shown(Vec::new()),
        Visible::Shown(points),
        Visible::Shown(Vec::new()),
    );
    let html = render(&page);
    assert_eq!(html.matches("<svg viewBox=\"0 0 288 40\"").count(), 2, "CPU and memory, no more: {html}");
    assert!(html.contains("aria-label=\"CPU busy over the last 24 h: 20% now, 95% at most, top of the chart 100%\""));
    assert!(html.contains("<path d=\"M"), "a drawn line");

    let empty = NodePage::new(
        chrome(Section::Nodes),
        &status,
        Visible::Shown(Vec::new()),
        Visible::Shown(Vec::new()),
        Visible::Shown(Vec::new()),
    );
    assert!(render(&empty).contains("No history yet"));
}

#[test]
fn the_exec_page_groups_outputs_as_the_cli_and_has_no_run_button_without_exec() {
    use drover_proto::api::{ExecNodeResult, ExecStatus};
    use drover_ui::pages::exec::{ExecForm, ExecOutcome, ExecPage};
    let result = |node: &str, status: ExecStatus, stdout: &str| ExecNodeResult {
        node: node.to_owned(),
        node_id: NodeId::new(format!("id-{node}")),
        status,
        exit_code: Some(if status == ExecStatus::Success { 0 } else { 2 }),
        error: String::new(),
        stdout: stdout.to_owned(),
        stderr: String::new(),
        truncated: false,
        duration_ms: 12,
    };
    let results = vec![
        result("web02", ExecStatus::Success, "Debian 13\n"),
        result("web01", ExecStatus::Success, "Debian 13\n"),
        result("web03", ExecStatus::Failure, "<b>Debian 12</b>\n"),
    ];
    let fold = |names: &[&str]| {
        let mut names = names.to_vec();
        names.sort();
        names.join(",")
    };
    let page = ExecPage {
        chrome: chrome(Section::Exec),
        refused: None,
        form: ExecForm { command: "cat /etc/debian_version".to_owned(), ..ExecForm::default() },
        error: None,
        outcome: Some(ExecOutcome::new(&results, fold)),
        preview: None,
    };
    let html = render(&page);
    let common = html.find("web01,web02 (2)").expect("the common output's group");
    let rare = html.find("web03 (1)").expect("the other group");
    assert!(common < rare, "the most common output first");
    assert!(html.contains("3 nodes: 2 success, 1 failure (web03)"), "{html}");
    assert!(html.contains("exit 2"));
    assert!(html.contains("Debian 12") && !html.contains("<b>Debian"), "output is escaped");
    assert!(html.contains("Preview</button>") && html.contains("name=\"csrf\" value=\"c5rf\""));
    assert!(!html.contains("Run on"), "no run button without a preview");

    let refused = ExecPage {
        chrome: chrome(Section::Exec),
        refused: Some("alice may not do this: needs node exec".to_owned()),
        form: ExecForm::default(),
        error: None,
        outcome: None,
        preview: None,
    };
    let html = render(&refused);
    assert!(!html.contains("Preview</button>") && html.contains("alice may not do this"), "{html}");
}

#[test]
fn the_exec_preview_names_the_nodes_and_its_button_runs_exactly_what_was_previewed() {
    use drover_ui::pages::exec::{ExecForm, ExecPage, ExecPreview};
    let fold = |names: &[&str]| names.join(",");
    let page = ExecPage {
        chrome: chrome(Section::Exec),
        refused: None,
        form: ExecForm {
            nodes: "web01 web02".to_owned(),
            filter: "environment == \"qa\"".to_owned(),
            command: "systemctl restart <x>".to_owned(),
            timeout: "10s".to_owned(),
        },
        error: None,
        outcome: None,
        preview: Some(ExecPreview::new(&["web01".to_owned(), "web02".to_owned()], &["db01".to_owned()], fold)),
    };
    let html = render(&page);
    assert!(html.contains("<h2 id=\"preview\">Runs on 2 nodes</h2>"), "{html}");
    assert!(html.contains(r#"<span class="mono" id="exec-selection">web01,web02</span>"#), "{html}");
    assert!(html.contains("may not run commands there (1 node, reported DENIED)"), "{html}");
    let run = &html[html.find(r#"<form id="exec-form""#).expect("the confirmation form")..];
    let run = &run[..run.find("</form>").unwrap()];
    for hidden in [
        r#"name="csrf" value="c5rf""#,
        r#"name="nodes" value="web01 web02""#,
        r#"name="filter" value="environment == &#34;qa&#34;""#,
        r#"name="command" value="systemctl restart &#60;x&#62;""#,
        r#"name="timeout" value="10s""#,
    ] {
        assert!(run.contains(hidden), "{hidden}: {run}");
    }
    assert!(run.contains("Run on 2 nodes</button>") && !run.contains("name=\"preview\""), "{run}");

    let nothing = ExecPage { preview: Some(ExecPreview::new(&[], &["db01".to_owned()], fold)), ..page };
    let html = render(&nothing);
    assert!(html.contains("Runs on 0 nodes") && !html.contains("exec-form"), "nothing to run: no button: {html}");
}

#[test]
fn a_streaming_exec_shows_the_nodes_that_answered_and_those_still_running() {
    use drover_proto::api::{ExecNodeResult, ExecStatus};
    use drover_ui::pages::exec::{ExecOutcome, ExecOutcomeFragment};
    let answered = vec![ExecNodeResult {
        node: "run02".to_owned(),
        node_id: NodeId::new("id-run02"),
        status: ExecStatus::Success,
        exit_code: Some(0),
        error: String::new(),
        stdout: "first-line\n".to_owned(),
        stderr: String::new(),
        truncated: false,
        duration_ms: 3,
    }];
    let selected = vec!["run01".to_owned(), "run02".to_owned(), "run03".to_owned()];
    let fold = |names: &[&str]| names.join(",");
    let html = render(&ExecOutcomeFragment { outcome: ExecOutcome::so_far(&answered, &selected, fold) });
    assert!(html.contains("1 of 3 nodes answered: 1 success"), "{html}");
    assert!(html.contains("Still running on run01,run03 (2)"), "{html}");
    assert!(html.contains("run02 (1)") && html.contains("first-line"), "{html}");
    // Once every node answered, the same as the whole run's rendering.
    let all = ExecOutcome::so_far(&answered, &["run02".to_owned()], fold);
    assert_eq!(all, ExecOutcome::new(&answered, fold));
    assert!(!render(&ExecOutcomeFragment { outcome: all }).contains("Still running"));
}

#[test]
fn a_runbook_is_rendered_from_its_markdown_and_html_in_it_is_shown_not_run() {
    use drover_ui::pages::react::RunbookPage;
    let page = RunbookPage {
        chrome: chrome(Section::Alerts),
        name: "disk_full".to_owned(),
        runbook: "runbooks/disk.md".to_owned(),
        markdown: Some("# Disk full\n\n1. `df -h`\n2. [wiki](javascript:x())\n\n<script>x()</script>\n".to_owned()),
    };
    let html = render(&page);
    assert!(html.contains(r#"<div class="markdown"><h1>Disk full</h1>"#), "{html}");
    assert!(html.contains("<li><code>df -h</code></li>"), "{html}");
    assert!(html.contains(r##"<a href="#">wiki</a>"##), "{html}");
    assert!(!html.contains("<script>x()") && html.contains("&lt;script&gt;x()"), "{html}");
    let linked = RunbookPage { markdown: None, runbook: "https://wiki.example/disk".to_owned(), ..page };
    assert!(render(&linked).contains(r#"<a href="https://wiki.example/disk">"#));
}
