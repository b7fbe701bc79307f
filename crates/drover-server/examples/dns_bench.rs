//! DNS benchmark (issue 14, docs/benchmarks.md "DNS (issue 14)"): how
//! many queries per second one server core answers with drover's DNS
//! interface at 10,000 service instances, side by side in one run with
//! Debian's `dnsmasq` serving the same records (a hosts file for A,
//! `srv-host` lines for SRV) as the reference; and what rebuilding the
//! zone from the state costs at that size.
//!
//! ```text
//! cargo build --release -p drover-server --example dns_bench
//! target/release/examples/dns_bench [--services 1000] [--per-service 10] [--seconds 10] [--clients 2] [--window 32]
//! ```
//!
//! The state is built as a real server's is, by applying Raft commands:
//! `--services` jobs of `--per-service` running allocations, one service
//! each, on 1,000 nodes. drover answers from `Zone::of(state)` through its
//! own sockets (`dns::serve_zone`, a one-thread runtime); dnsmasq runs as
//! its own process. The load generator sends a fixed mix (half
//! `NAME.service.drover` A, half `_NAME._tcp.service.drover` SRV, names
//! drawn round-robin) from `--clients` threads over UDP, each keeping
//! `--window` queries in flight, and counts answers. Both servers are
//! single-threaded; "per core" is answers divided by the CPU time the
//! server itself used (its thread's or process's utime + stime from
//! /proc), so the load generator sharing the machine does not skew the
//! comparison.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};

use drover_server::dns::{DnsSettings, Zone, serve_zone};
use drover_server::services::Catalogue;
use drover_state::{Command as RaftCommand, State};
use drover_types::network::{ADDRESS_ATTRIBUTE, AllocatedPort, NetworkSpec, PortSpec};
use drover_types::{
    AllocClientStatus, Allocation, ClientAllocUpdate, EvalId, EvalStatus, EvalTrigger, Evaluation, JobId, JobType,
    NodeId, Plan, Service, Timestamp, fixtures,
};

/// Nodes the instances are spread over.
const NODES: usize = 1000;

struct Options {
    services: usize,
    per_service: usize,
    seconds: u64,
    clients: usize,
    window: usize,
}

fn options() -> Options {
    let mut options = Options { services: 1000, per_service: 10, seconds: 10, clients: 2, window: 32 };
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    for pair in arguments.chunks(2) {
        let [flag, value] = pair else {
            exit_with(&format!("{} needs a value", pair[0]));
        };
        let Ok(number) = value.parse::<usize>() else {
            exit_with(&format!("{flag} {value}: expected a number"));
        };
        match flag.as_str() {
            "--services" => options.services = number,
            "--per-service" => options.per_service = number,
            "--seconds" => options.seconds = number as u64,
            "--clients" => options.clients = number.max(1),
            "--window" => options.window = number.max(1),
            other => exit_with(&format!(
                "unknown flag {other}: give --services, --per-service, --seconds, --clients or --window"
            )),
        }
    }
    options
}

fn exit_with(message: &str) -> ! {
    eprintln!("dns_bench: {message}");
    std::process::exit(2);
}

fn node_name(index: usize) -> String {
    format!("n{index}")
}

fn node_address(index: usize) -> String {
    format!("10.{}.{}.{}", index / 65_536 % 256, index / 256 % 256, index % 256 + 1)
}

fn service_name(index: usize) -> String {
    format!("svc{index}")
}

/// One instance: (service, node index, port).
type Instance = (usize, usize, u16);

/// The instances of the benchmark: service `s`'s `k`th on node
/// `(s * per_service + k) % NODES`, port 20000 + k.
fn instances(options: &Options) -> Vec<Instance> {
    (0..options.services)
        .flat_map(|service| {
            (0..options.per_service).map(move |k| {
                (service, (service * options.per_service + k) % NODES, 20_000 + u16::try_from(k).unwrap_or(0))
            })
        })
        .collect()
}

/// A state holding `instances` as running allocations, built by applying
/// the commands a real cluster commits.
fn state_of(options: &Options, instances: &[Instance]) -> State {
    let mut state = State::new();
    let mut index = 0_u64;
    let mut apply = |state: &mut State, command: &RaftCommand| {
        index += 1;
        state.apply(index, command);
    };
    for node in 0..NODES {
        let mut registered = fixtures::node(&node_name(node));
        registered.attributes.insert(ADDRESS_ATTRIBUTE.to_owned(), node_address(node));
        let registration = fixtures::registration_of(&registered);
        apply(&mut state, &RaftCommand::RegisterNode { registration, evals: Vec::new(), now: Timestamp::ZERO });
    }
    let eval_of = |job: &JobId, number: usize| {
        let mut eval = Evaluation::new(
            EvalId::new(format!("eval-{number}")),
            job.clone(),
            50,
            EvalTrigger::JobRegister,
            Timestamp::ZERO,
        );
        eval.status = EvalStatus::Complete;
        eval
    };
    let mut by_service: BTreeMap<usize, Vec<&Instance>> = BTreeMap::new();
    for instance in instances {
        by_service.entry(instance.0).or_default().push(instance);
    }
    let mut updates = Vec::new();
    for (service, members) in by_service {
        let job_id = JobId::new(format!("job{service}"));
        let mut group = fixtures::group("web", JobType::Service, u32::try_from(options.per_service).unwrap_or(1));
        group.network = Some(NetworkSpec { ports: vec![PortSpec { label: "http".to_owned(), static_port: None }] });
        group.tasks[0].services = vec![Service {
            name: service_name(service),
            port_label: Some("http".to_owned()),
            tags: vec!["v1".to_owned()],
            ..Service::default()
        }];
        let job = fixtures::service_job(job_id.as_str(), 1).with_groups(vec![group]);
        apply(&mut state, &RaftCommand::RegisterJob { job, eval: eval_of(&job_id, service * 2), now: Timestamp::ZERO });
        let place: Vec<Allocation> = members
            .iter()
            .enumerate()
            .map(|(k, (_, node, port))| {
                let mut alloc =
                    fixtures::alloc(&format!("a{service}-{k}"), job_id.as_str(), "web", &NodeId::new(node_name(*node)));
                alloc.index = u32::try_from(k).unwrap_or(0);
                alloc.ports =
                    vec![AllocatedPort { label: "http".to_owned(), value: *port, host_ip: node_address(*node) }];
                alloc
            })
            .collect();
        updates.extend(place.iter().map(|alloc| ClientAllocUpdate {
            alloc_id: alloc.id.clone(),
            client_status: AllocClientStatus::Running,
            client_description: String::new(),
            task_states: BTreeMap::new(),
            checks: Vec::new(),
            deployment_health: None,
        }));
        let eval = eval_of(&job_id, service * 2 + 1);
        let plan = Plan { eval_id: eval.id.clone(), job_id: job_id.clone(), place, ..Plan::default() };
        apply(
            &mut state,
            &RaftCommand::ApplyPlan { plan: Box::new(plan), eval, blocked_eval: None, now: Timestamp::ZERO },
        );
    }
    apply(&mut state, &RaftCommand::UpdateAllocsFromClient { updates, evals: Vec::new(), now: Timestamp::ZERO });
    state
}

/// The median of `runs` timings of `work`, in milliseconds.
fn median_ms(runs: usize, mut work: impl FnMut()) -> f64 {
    let mut timings: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    timings.sort_by(f64::total_cmp);
    timings[timings.len() / 2]
}

/// The benchmark's queries, encoded: half A, half SRV, over every service.
fn queries(options: &Options) -> Vec<Vec<u8>> {
    (0..options.services)
        .flat_map(|service| {
            let name = service_name(service);
            [
                (format!("{name}.service.drover."), RecordType::A),
                (format!("_{name}._tcp.service.drover."), RecordType::SRV),
            ]
        })
        .map(|(name, record_type)| {
            let mut message = Message::query();
            message.metadata.recursion_desired = true;
            message.add_query(Query::query(Name::from_ascii(&name).expect("a valid name"), record_type));
            message.set_edns(edns_4096());
            message.to_vec().expect("an encodable query")
        })
        .collect()
}

/// EDNS with a 4096-byte buffer, as resolvers send: the SRV answers (ten
/// targets and their addresses) do not fit 512 bytes.
fn edns_4096() -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    edns
}

/// Asks `server` once and returns the number of answer records.
fn answers_to(server: SocketAddr, name: &str, record_type: RecordType) -> usize {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a client socket");
    socket.set_read_timeout(Some(Duration::from_secs(2))).expect("a timeout");
    let mut message = Message::query();
    message.add_query(Query::query(Name::from_ascii(name).expect("a valid name"), record_type));
    message.set_edns(edns_4096());
    socket.send_to(&message.to_vec().expect("encodable"), server).expect("send");
    let mut buffer = vec![0_u8; 65_535];
    let Ok(length) = socket.recv(&mut buffer) else {
        return 0;
    };
    Message::from_vec(&buffer[..length]).map_or(0, |answer| answer.answers.len())
}

/// Sends `queries` to `server` from `clients` threads for `duration`, each
/// keeping `window` in flight; returns the answers received.
fn load(server: SocketAddr, queries: &Arc<Vec<Vec<u8>>>, duration: Duration, clients: usize, window: usize) -> u64 {
    let answered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let (queries, answered, stop) = (queries.clone(), answered.clone(), stop.clone());
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").expect("a client socket");
                socket.connect(server).expect("connect");
                socket.set_read_timeout(Some(Duration::from_millis(20))).expect("a timeout");
                let mut next = client * 7919;
                let mut id: u16 = 0;
                let mut send = |socket: &UdpSocket| {
                    let mut query = queries[next % queries.len()].clone();
                    next += 1;
                    id = id.wrapping_add(1);
                    query[..2].copy_from_slice(&id.to_be_bytes());
                    let _ = socket.send(&query);
                };
                for _ in 0..window {
                    send(&socket);
                }
                let mut buffer = vec![0_u8; 65_535];
                let mut mine = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    match socket.recv(&mut buffer) {
                        Ok(_) => {
                            mine += 1;
                            send(&socket);
                        }
                        // Lost queries: put the window back.
                        Err(_) => {
                            for _ in 0..window {
                                send(&socket);
                            }
                        }
                    }
                }
                answered.fetch_add(mine, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    answered.load(Ordering::Relaxed)
}

/// utime + stime of `/proc/.../stat`, in seconds.
fn cpu_seconds(stat_path: &str) -> f64 {
    let text = std::fs::read_to_string(stat_path).unwrap_or_default();
    // The command name (in parentheses) may hold spaces: count after it.
    let after_name = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|utime| utime.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|stime| stime.parse().ok()).unwrap_or(0);
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
    ticks as f64 / per_second as f64
}

struct Measured {
    answered: u64,
    seconds: f64,
    cpu_seconds: f64,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.answered as f64 / self.seconds
    }

    fn per_core(&self) -> f64 {
        self.answered as f64 / self.cpu_seconds.max(0.001)
    }
}

fn measure(server: SocketAddr, stat_path: &str, queries: &Arc<Vec<Vec<u8>>>, options: &Options) -> Measured {
    // A second of warm-up, not counted.
    load(server, queries, Duration::from_secs(1), options.clients, options.window);
    let cpu_before = cpu_seconds(stat_path);
    let started = Instant::now();
    let answered = load(server, queries, Duration::from_secs(options.seconds), options.clients, options.window);
    let seconds = started.elapsed().as_secs_f64();
    Measured { answered, seconds, cpu_seconds: cpu_seconds(stat_path) - cpu_before }
}

/// Serves `zone` with drover's DNS on a thread of its own (a one-thread
/// runtime); returns its address and the thread's /proc stat path.
fn start_drover(zone: Zone) -> (SocketAddr, String) {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a one-thread runtime");
        runtime.block_on(async move {
            let thread_id = std::fs::read_to_string("/proc/thread-self/stat")
                .ok()
                .and_then(|stat| stat.split_whitespace().next().map(str::to_owned))
                .unwrap_or_default();
            let (_zones, zone) = tokio::sync::watch::channel(Arc::new(zone));
            let settings =
                DnsSettings { bind: "127.0.0.1:0".parse().expect("an address"), ttl: 0, recursors: Vec::new() };
            let shutdown = tokio_util::sync::CancellationToken::new();
            let listener = serve_zone(zone, &settings, shutdown.clone()).await.expect("bind drover's DNS");
            sender.send((listener.local_addr, format!("/proc/self/task/{thread_id}/stat"))).expect("report");
            std::future::pending::<()>().await;
        });
    });
    receiver.recv().expect("drover's DNS started")
}

/// A dnsmasq process answering the same records on a free port.
struct Dnsmasq {
    child: Child,
    address: SocketAddr,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_dnsmasq(dir: &Path, instances: &[Instance]) -> Dnsmasq {
    let mut hosts = String::new();
    let mut config = String::new();
    for node in 0..NODES {
        hosts.push_str(&format!("{} {}.node.drover\n", node_address(node), node_name(node)));
    }
    for (service, node, port) in instances {
        let name = service_name(*service);
        hosts.push_str(&format!("{} {name}.service.drover\n", node_address(*node)));
        config.push_str(&format!("srv-host=_{name}._tcp.service.drover,{}.node.drover,{port},1,1\n", node_name(*node)));
    }
    let hosts_file = dir.join("hosts");
    let config_file = dir.join("dnsmasq.conf");
    std::fs::write(&hosts_file, hosts).expect("write the hosts file");
    std::fs::write(&config_file, config).expect("write the dnsmasq configuration");
    let port = UdpSocket::bind("127.0.0.1:0").and_then(|socket| socket.local_addr()).expect("a free port").port();
    let child = Command::new("dnsmasq")
        .args(["--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1"])
        .args(["--pid-file=", "--user=root", "--local-ttl=0"])
        .arg(format!("--conf-file={}", config_file.display()))
        .arg(format!("--addn-hosts={}", hosts_file.display()))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| {
            exit_with(&format!("cannot start dnsmasq ({error}): install dnsmasq-base (scripts/install-test-deps)"))
        });
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(20);
    let probe = format!("{}.service.drover.", service_name(0));
    while answers_to(address, &probe, RecordType::A) == 0 {
        if Instant::now() > deadline {
            exit_with("dnsmasq did not answer within 20 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Dnsmasq { child, address }
}

fn main() {
    let options = options();
    let instances = instances(&options);
    println!(
        "DNS benchmark: {} services x {} instances = {} instances on {NODES} nodes",
        options.services,
        options.per_service,
        instances.len()
    );
    let started = Instant::now();
    let state = state_of(&options, &instances);
    println!("state built by applying commands in {:.1} s", started.elapsed().as_secs_f64());

    let catalogue_ms = median_ms(11, || {
        std::hint::black_box(Catalogue::of(&state));
    });
    let rebuild_ms = median_ms(11, || {
        std::hint::black_box(Zone::of(&state, 0));
    });
    let zone = Zone::of(&state, 0);
    println!(
        "zone rebuild at {} instances: {rebuild_ms:.1} ms (of which the catalogue {catalogue_ms:.1} ms), median of 11",
        instances.len()
    );

    let dir = std::env::temp_dir().join(format!("dns-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let (drover_address, drover_stat) = start_drover(zone);
    let dnsmasq = start_dnsmasq(&dir, &instances);

    let a_name = format!("{}.service.drover.", service_name(1));
    let srv_name = format!("_{}._tcp.service.drover.", service_name(1));
    for (who, address) in [("drover", drover_address), ("dnsmasq", dnsmasq.address)] {
        println!(
            "{who:8} answers {} A and {} SRV records for one service",
            answers_to(address, &a_name, RecordType::A),
            answers_to(address, &srv_name, RecordType::SRV)
        );
    }

    let queries = Arc::new(queries(&options));
    let dnsmasq_stat = format!("/proc/{}/stat", dnsmasq.child.id());
    let drover = measure(drover_address, &drover_stat, &queries, &options);
    let reference = measure(dnsmasq.address, &dnsmasq_stat, &queries, &options);
    for (who, measured) in [("drover", &drover), ("dnsmasq", &reference)] {
        println!(
            "{who:8} {:>9} answers in {:.1} s = {:>8.0} q/s, server CPU {:.2} s = {:>8.0} q/s per core",
            measured.answered,
            measured.seconds,
            measured.per_second(),
            measured.cpu_seconds,
            measured.per_core()
        );
    }
    println!("drover / dnsmasq per core: {:.2}", drover.per_core() / reference.per_core().max(1.0));
    drop(dnsmasq);
    let _ = std::fs::remove_dir_all(&dir);
}
