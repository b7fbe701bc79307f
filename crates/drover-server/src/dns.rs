//! The servers' DNS interface (`drover server --dns-bind ADDR`): the
//! service catalogue and the nodes under the zone `drover.`, answered from
//! this server's own state (stale-ok, like Consul's default), over UDP and
//! TCP (docs/services.md).
//!
//! ```text
//!  NAME.service.drover          A/AAAA  healthy instances' addresses
//!  TAG.NAME.service.drover      A/AAAA  those announcing TAG
//!  _NAME._tcp.service.drover    SRV     port and target NODE.node.drover
//!  _NAME._TAG.service.drover    SRV     those announcing TAG (and SRV for
//!                                       the two forms above too)
//!  NODE.node.drover             A/AAAA  the node's address
//!  anything else under drover.  NXDOMAIN (with the zone's SOA)
//!  any other zone               forwarded to the recursors
//!                               (`--dns-recursor`), REFUSED without
//! ```
//!
//! A query for another zone is forwarded as it came to the first recursor
//! that answers (UDP with a timeout, again over TCP when the UDP answer is
//! truncated), and its answer passed back; SERVFAIL when none answers.
//!
//! The records live in a [`Zone`], rebuilt from the state whenever it
//! changes (a watch on the applied states: changes that arrive during a
//! rebuild are folded into the next one), and read by every query without
//! a lock held across I/O. Answering is a pure function of a zone and the
//! query's bytes ([`Zone::respond`]), unit-tested without sockets; the
//! sockets are the thin shell of [`serve`]. Messages are parsed and encoded
//! by `hickory-proto`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand::seq::SliceRandom;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

use drover_proto::api::ServiceHealth;
use drover_state::State;
use drover_types::network::ADDRESS_ATTRIBUTE;
use drover_types::{Node, NodeStatus};

use crate::Server;
use crate::services::Catalogue;

/// The zone drover answers for.
pub const ZONE: &str = "drover.";

/// The TTL of answers unless `--dns-ttl` says otherwise: 0, so resolvers
/// ask again each time and an instance that fails its check leaves at once
/// (Consul's default too).
pub const DEFAULT_TTL: u32 = 0;

/// The largest UDP answer drover sends (also to clients announcing more
/// with EDNS); larger answers are truncated and the client retries on TCP.
const MAX_UDP_ANSWER: usize = 4096;

/// How long a TCP client may take to send a query.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// How long a recursor has to answer one forwarded query (each transport)
/// before the next recursor is asked.
pub const RECURSOR_TIMEOUT: Duration = Duration::from_secs(2);

/// Where and how the DNS interface listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsSettings {
    /// The UDP and TCP address (`--dns-bind`).
    pub bind: SocketAddr,
    /// The TTL of every answer, in seconds (`--dns-ttl`).
    pub ttl: u32,
    /// Where queries outside the zone go, in order (`--dns-recursor`);
    /// empty: they are REFUSED.
    pub recursors: Vec<SocketAddr>,
}

/// A recursor's address as `--dns-recursor` gives it: an IP address, with
/// a port or the DNS port 53 (`192.0.2.53`, `192.0.2.53:5353`, `::1`,
/// `[::1]:5353`).
pub fn parse_recursor(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    match text.parse::<IpAddr>() {
        Ok(address) => Ok(SocketAddr::new(address, 53)),
        Err(_) => Err(format!(
            "{text:?} is not a recursor address: give an IP address, with a port when it is not 53 (192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53)"
        )),
    }
}

/// What to do with one query's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send this answer.
    Answer(Vec<u8>),
    /// The query is outside the zone: forward it to the recursors, and
    /// pass on an answer of at most this many bytes (UDP; `None`: any).
    Forward(Option<usize>),
    /// Nothing to send (not a query, or too broken to answer).
    Nothing,
}

/// One healthy instance as DNS announces it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Endpoint {
    address: Option<IpAddr>,
    port: Option<u16>,
    /// The lowercased node name, the target of SRV records.
    node: String,
    /// Lowercased tags.
    tags: Vec<String>,
}

/// The records of the zone `drover.` at one state.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    /// Healthy instances by lowercased service name.
    services: HashMap<String, Vec<Endpoint>>,
    /// Node addresses by lowercased node name.
    nodes: HashMap<String, IpAddr>,
    ttl: u32,
    /// The SOA serial: the Raft index of the state (truncated).
    serial: u32,
}

impl Zone {
    /// The zone of `state`: its catalogue's healthy instances and its nodes
    /// that are not down.
    pub fn of(state: &State, ttl: u32) -> Zone {
        let catalogue = Catalogue::of(state);
        Zone::new(&catalogue, state.nodes().map(|node| node.as_ref()), ttl)
    }

    /// The zone of `catalogue` and `nodes`.
    pub fn new<'a>(catalogue: &Catalogue, nodes: impl IntoIterator<Item = &'a Node>, ttl: u32) -> Zone {
        let mut services: HashMap<String, Vec<Endpoint>> = HashMap::new();
        for instance in catalogue.instances().iter().filter(|instance| instance.health == ServiceHealth::Passing) {
            services.entry(instance.service.to_ascii_lowercase()).or_default().push(Endpoint {
                address: instance.address.parse().ok(),
                port: instance.port,
                node: instance.node_name.to_ascii_lowercase(),
                tags: instance.tags.iter().map(|tag| tag.to_ascii_lowercase()).collect(),
            });
        }
        let nodes = nodes
            .into_iter()
            .filter(|node| node.status != NodeStatus::Down)
            .filter_map(|node| {
                let address = node.attributes.get(ADDRESS_ATTRIBUTE).map_or("127.0.0.1", String::as_str);
                Some((node.name.to_ascii_lowercase(), address.parse().ok()?))
            })
            .collect();
        let serial = u32::try_from(catalogue.index() % u64::from(u32::MAX)).unwrap_or(0);
        Zone { services, nodes, ttl, serial }
    }

    /// The answer to the DNS message `query` (its wire bytes), or `None`
    /// when it is too broken to answer at all. `udp_limit` is the
    /// transport's size limit (UDP), `None` for TCP.
    pub fn respond(&self, query: &[u8], udp_limit: Option<usize>) -> Option<Vec<u8>> {
        match self.reply(query, udp_limit, false) {
            Reply::Answer(bytes) => Some(bytes),
            Reply::Forward(_) | Reply::Nothing => None,
        }
    }

    /// What to do with the DNS message `query` (its wire bytes): answer it
    /// from the zone, or, when `forwarding` and it asks about another zone,
    /// forward it. `udp_limit` is the transport's size limit (UDP), `None`
    /// for TCP.
    pub fn reply(&self, query: &[u8], udp_limit: Option<usize>, forwarding: bool) -> Reply {
        let request = match Message::from_vec(query) {
            Ok(request) => request,
            Err(_) => {
                // Answer FORMERR when at least the id is readable.
                let (Some(first), Some(second)) = (query.first(), query.get(1)) else {
                    return Reply::Nothing;
                };
                let id = u16::from_be_bytes([*first, *second]);
                return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                    .to_vec()
                    .map_or(Reply::Nothing, Reply::Answer);
            }
        };
        if request.metadata.message_type != MessageType::Query {
            return Reply::Nothing;
        }
        if forwarding && is_outside_the_zone(&request) {
            return Reply::Forward(udp_limit.map(|transport_limit| udp_answer_limit(&request, transport_limit)));
        }
        let response = self.answer(&request);
        let Ok(bytes) = response.to_vec() else {
            return Reply::Nothing;
        };
        let Some(transport_limit) = udp_limit else {
            return Reply::Answer(bytes);
        };
        if bytes.len() <= udp_answer_limit(&request, transport_limit) {
            return Reply::Answer(bytes);
        }
        response.truncate().to_vec().map_or(Reply::Nothing, Reply::Answer)
    }

    /// The answer to a parsed query.
    pub fn answer(&self, request: &Message) -> Message {
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        if let Some(request_edns) = &request.edns {
            let mut edns = Edns::new();
            edns.set_max_payload(request_edns.max_payload().clamp(512, MAX_UDP_ANSWER as u16));
            response.set_edns(edns);
        }
        if request.metadata.op_code != OpCode::Query {
            response.metadata.response_code = ResponseCode::NotImp;
            return response;
        }
        let [query] = request.queries.as_slice() else {
            response.metadata.response_code = ResponseCode::FormErr;
            return response;
        };
        response.add_query(query.clone());
        let zone = zone_name();
        let name = query.name().to_lowercase();
        if !zone.zone_of(&name) {
            response.metadata.response_code = ResponseCode::Refused;
            return response;
        }
        response.metadata.authoritative = true;
        match self.records(&name, query) {
            Some((answers, additionals)) => {
                if answers.is_empty() {
                    response.add_authority(self.soa());
                }
                response.add_answers(answers);
                response.add_additionals(additionals);
            }
            None => {
                response.metadata.response_code = ResponseCode::NXDomain;
                response.add_authority(self.soa());
            }
        }
        response
    }

    /// The answers and additional records of `name` (lowercased, under the
    /// zone) for `query`'s type; `None` when the name does not exist.
    fn records(&self, name: &Name, query: &Query) -> Option<(Vec<Record>, Vec<Record>)> {
        let labels: Vec<String> = name.iter().map(|label| String::from_utf8_lossy(label).into_owned()).collect();
        let (_zone, inside) = labels.split_last()?;
        let query_type = query.query_type();
        match inside {
            [] => Some(match query_type {
                RecordType::SOA => (vec![self.soa()], Vec::new()),
                _ => (Vec::new(), Vec::new()),
            }),
            [owner @ .., kind] if kind == "node" && !owner.is_empty() => {
                let address = *self.nodes.get(&owner.join("."))?;
                Some((address_records(name, [address], query_type, self.ttl), Vec::new()))
            }
            [owner @ .., kind] if kind == "service" => {
                let (service, tag) = match owner {
                    [service] => (service.as_str(), None),
                    [service, protocol] if service.starts_with('_') && protocol.starts_with('_') => {
                        let tag = &protocol[1..];
                        (&service[1..], (tag != "tcp" && tag != "udp").then_some(tag))
                    }
                    [tag, service] => (service.as_str(), Some(tag.as_str())),
                    _ => return None,
                };
                let mut endpoints: Vec<&Endpoint> = self
                    .services
                    .get(service)?
                    .iter()
                    .filter(|endpoint| tag.is_none_or(|tag| endpoint.tags.iter().any(|known| known == tag)))
                    .collect();
                if endpoints.is_empty() {
                    return None;
                }
                // Clients take the first answer: spread them.
                endpoints.shuffle(&mut rand::rng());
                Some(self.service_records(name, &endpoints, query_type))
            }
            _ => None,
        }
    }

    fn service_records(
        &self,
        name: &Name,
        endpoints: &[&Endpoint],
        query_type: RecordType,
    ) -> (Vec<Record>, Vec<Record>) {
        if query_type != RecordType::SRV {
            let mut addresses: Vec<IpAddr> = Vec::new();
            for address in endpoints.iter().filter_map(|endpoint| endpoint.address) {
                if !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
            return (address_records(name, addresses, query_type, self.ttl), Vec::new());
        }
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        let mut glued: std::collections::HashSet<(&str, IpAddr)> = std::collections::HashSet::new();
        for endpoint in endpoints {
            let (Some(port), Ok(target)) = (endpoint.port, Name::from_ascii(format!("{}.node.{ZONE}", endpoint.node)))
            else {
                continue;
            };
            answers.push(Record::from_rdata(name.clone(), self.ttl, RData::SRV(SRV::new(1, 1, port, target.clone()))));
            if let Some(address) = endpoint.address
                && glued.insert((endpoint.node.as_str(), address))
            {
                additionals.extend(address_records(&target, [address], RecordType::ANY, self.ttl));
            }
        }
        (answers, additionals)
    }

    /// The zone's SOA record, for the authority section of negative
    /// answers (its minimum is the TTL of not-found, RFC 2308).
    fn soa(&self) -> Record {
        let zone = zone_name();
        let mname = Name::from_ascii(format!("ns.{ZONE}")).unwrap_or_else(|_| zone.clone());
        let rname = Name::from_ascii(format!("hostmaster.{ZONE}")).unwrap_or_else(|_| zone.clone());
        let soa = SOA::new(mname, rname, self.serial, 3600, 600, 86_400, self.ttl);
        Record::from_rdata(zone, self.ttl, RData::SOA(soa))
    }
}

/// Whether `request` is a plain query about a name outside the zone
/// `drover.` (what recursors answer).
fn is_outside_the_zone(request: &Message) -> bool {
    let zone = zone_name();
    request.metadata.op_code == OpCode::Query
        && matches!(request.queries.as_slice(), [query] if !zone.zone_of(&query.name().to_lowercase()))
}

/// The largest UDP answer the client of `request` takes: 512 bytes, or
/// what its EDNS announces, within the transport's and drover's limits.
fn udp_answer_limit(request: &Message, transport_limit: usize) -> usize {
    request
        .edns
        .as_ref()
        .map_or(512, |edns| usize::from(edns.max_payload()).max(512))
        .min(transport_limit)
        .min(MAX_UDP_ANSWER)
}

fn zone_name() -> Name {
    Name::from_ascii(ZONE).unwrap_or_else(|_| Name::root())
}

/// A and AAAA records of `name` for `addresses`, as `query_type` asks
/// (ANY: both).
fn address_records(
    name: &Name,
    addresses: impl IntoIterator<Item = IpAddr>,
    query_type: RecordType,
    ttl: u32,
) -> Vec<Record> {
    addresses
        .into_iter()
        .filter_map(|address| match (address, query_type) {
            (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => Some(RData::A(A(v4))),
            (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => Some(RData::AAAA(AAAA(v6))),
            _ => None,
        })
        .map(|rdata| Record::from_rdata(name.clone(), ttl, rdata))
        .collect()
}

/// A running DNS interface; dropping it does not stop it (the server's
/// shutdown does).
#[derive(Debug)]
pub struct DnsListener {
    /// The UDP and TCP address it answers on (the port chosen when the
    /// bind address said 0).
    pub local_addr: SocketAddr,
}

/// Binds `settings.bind` (UDP and TCP) and answers queries until the
/// server shuts down, from a zone rebuilt as the server's state changes.
pub async fn serve(server: &Server, settings: DnsSettings) -> std::io::Result<DnsListener> {
    let (zones, zone) = watch::channel(Arc::new(Zone::of(&server.state(), settings.ttl)));
    let shutdown = server.shutdown_token().clone();
    let mut states = server.watch_state();
    let ttl = settings.ttl;
    tokio::spawn(shutdown.clone().run_until_cancelled_owned(async move {
        while states.changed().await.is_ok() {
            let state = states.borrow_and_update().clone();
            let rebuilt = tokio::task::spawn_blocking(move || Zone::of(&state, ttl)).await;
            if let Ok(rebuilt) = rebuilt {
                zones.send_replace(Arc::new(rebuilt));
            }
        }
    }));
    serve_zone(zone, &settings, shutdown).await
}

/// Binds `settings.bind` (UDP and TCP) and answers queries from the
/// latest zone `zone` holds until `shutdown` (the benchmark serves a zone
/// of its own this way: crates/drover-server/examples/dns_bench.rs).
pub async fn serve_zone(
    zone: watch::Receiver<Arc<Zone>>,
    settings: &DnsSettings,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<DnsListener> {
    let udp = Arc::new(UdpSocket::bind(settings.bind).await?);
    let local_addr = udp.local_addr()?;
    let forwarder = Forwarder::new(&settings.recursors);
    let tcp = TcpListener::bind(local_addr).await?;
    tokio::spawn(shutdown.clone().run_until_cancelled_owned(answer_udp(
        udp,
        zone.clone(),
        forwarder.clone(),
        shutdown.clone(),
    )));
    tokio::spawn(shutdown.clone().run_until_cancelled_owned(answer_tcp(tcp, zone, forwarder, shutdown.clone())));
    let recursors: Vec<String> = settings.recursors.iter().map(SocketAddr::to_string).collect();
    tracing::info!(
        address = %local_addr,
        ttl = settings.ttl,
        recursors = %recursors.join(","),
        "DNS interface listening (UDP and TCP) for the zone drover."
    );
    Ok(DnsListener { local_addr })
}

async fn answer_udp(
    socket: Arc<UdpSocket>,
    zone: watch::Receiver<Arc<Zone>>,
    forwarder: Forwarder,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut buffer = vec![0_u8; 4096];
    loop {
        let (length, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                tracing::debug!(%error, "DNS: receiving a UDP query failed");
                continue;
            }
        };
        let query = &buffer[..length];
        let current = zone.borrow().clone();
        let answer = match current.reply(query, Some(MAX_UDP_ANSWER), forwarder.is_on()) {
            Reply::Answer(answer) => answer,
            Reply::Nothing => continue,
            Reply::Forward(answer_limit) => {
                // Forwarding waits on the network: the loop goes on
                // answering the zone meanwhile.
                let Some(permit) = forwarder.in_flight.clone().try_acquire_owned().ok() else {
                    tracing::debug!(%peer, "DNS: too many forwarded queries in flight, dropped one");
                    continue;
                };
                let (socket, forwarder, query) = (socket.clone(), forwarder.clone(), query.to_vec());
                tokio::spawn(shutdown.clone().run_until_cancelled_owned(async move {
                    let _permit = permit;
                    if let Some(answer) = forwarder.forward(&query, answer_limit).await
                        && let Err(error) = socket.send_to(&answer, peer).await
                    {
                        tracing::debug!(%error, %peer, "DNS: sending a forwarded UDP answer failed");
                    }
                }));
                continue;
            }
        };
        if let Err(error) = socket.send_to(&answer, peer).await {
            tracing::debug!(%error, %peer, "DNS: sending a UDP answer failed");
        }
    }
}

async fn answer_tcp(
    listener: TcpListener,
    zone: watch::Receiver<Arc<Zone>>,
    forwarder: Forwarder,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "DNS: accepting a TCP client failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (zone, forwarder) = (zone.clone(), forwarder.clone());
        tokio::spawn(shutdown.clone().run_until_cancelled_owned(async move {
            if let Err(error) = answer_tcp_client(stream, zone, forwarder).await {
                tracing::debug!(%error, %peer, "DNS: TCP client ended");
            }
        }));
    }
}

/// Answers one TCP client's queries (each prefixed by its 2-byte length,
/// RFC 1035 4.2.2) until it closes or stays idle.
async fn answer_tcp_client(
    mut stream: TcpStream,
    zone: watch::Receiver<Arc<Zone>>,
    forwarder: Forwarder,
) -> std::io::Result<()> {
    loop {
        let mut length = [0_u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut length)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(error)) => return Err(error),
            Err(_) => return Ok(()),
        }
        let mut query = vec![0_u8; usize::from(u16::from_be_bytes(length))];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query)).await.map_err(std::io::Error::other)??;
        let current = zone.borrow().clone();
        let answer = match current.reply(&query, None, forwarder.is_on()) {
            Reply::Answer(answer) => answer,
            Reply::Forward(_) => match forwarder.forward(&query, None).await {
                Some(answer) => answer,
                None => continue,
            },
            Reply::Nothing => continue,
        };
        let Ok(answer_length) = u16::try_from(answer.len()) else {
            continue;
        };
        stream.write_all(&answer_length.to_be_bytes()).await?;
        stream.write_all(&answer).await?;
    }
}

/// How many forwarded UDP queries may wait on the recursors at once; more
/// are dropped (their clients ask again).
const MAX_FORWARDS_IN_FLIGHT: usize = 1024;

/// Forwards queries outside the zone to the recursors, in order.
#[derive(Clone, Debug)]
struct Forwarder {
    recursors: Arc<[SocketAddr]>,
    timeout: Duration,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl Forwarder {
    fn new(recursors: &[SocketAddr]) -> Forwarder {
        Forwarder {
            recursors: recursors.into(),
            timeout: RECURSOR_TIMEOUT,
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_FORWARDS_IN_FLIGHT)),
        }
    }

    /// Whether there is any recursor to forward to.
    fn is_on(&self) -> bool {
        !self.recursors.is_empty()
    }

    /// The answer of the first recursor that answers `query`, at most
    /// `answer_limit` bytes long (a UDP client), else SERVFAIL.
    async fn forward(&self, query: &[u8], answer_limit: Option<usize>) -> Option<Vec<u8>> {
        for recursor in self.recursors.iter() {
            match ask_recursor(*recursor, query, answer_limit, self.timeout).await {
                Ok(answer) => return Some(answer),
                Err(error) => tracing::debug!(%error, %recursor, "DNS: a recursor did not answer, asking the next"),
            }
        }
        tracing::debug!(recursors = self.recursors.len(), "DNS: no recursor answered, SERVFAIL");
        server_failure(query)
    }
}

/// `recursor`'s answer to `query`: over UDP, and again over TCP when that
/// answer is truncated. A UDP client (`answer_limit`) too small for the
/// whole answer gets the truncated one and asks again over TCP itself.
async fn ask_recursor(
    recursor: SocketAddr,
    query: &[u8],
    answer_limit: Option<usize>,
    timeout: Duration,
) -> std::io::Result<Vec<u8>> {
    let over_udp = tokio::time::timeout(timeout, ask_over_udp(recursor, query))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no UDP answer in time"))??;
    if !is_truncated(&over_udp) {
        return Ok(over_udp);
    }
    let over_tcp = tokio::time::timeout(timeout, ask_over_tcp(recursor, query))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no TCP answer in time"))??;
    match answer_limit {
        Some(limit) if over_tcp.len() > limit => Ok(over_udp),
        _ => Ok(over_tcp),
    }
}

async fn ask_over_udp(recursor: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match recursor {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(recursor).await?;
    socket.send(query).await?;
    let mut buffer = vec![0_u8; 65_535];
    loop {
        let length = socket.recv(&mut buffer).await?;
        // Only the answer to this query (same id) counts.
        if length >= 12 && buffer.get(..2) == query.get(..2) {
            buffer.truncate(length);
            return Ok(buffer);
        }
    }
}

async fn ask_over_tcp(recursor: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let length = u16::try_from(query.len()).map_err(std::io::Error::other)?;
    let mut stream = TcpStream::connect(recursor).await?;
    stream.write_all(&length.to_be_bytes()).await?;
    stream.write_all(query).await?;
    let mut answer_length = [0_u8; 2];
    stream.read_exact(&mut answer_length).await?;
    let mut answer = vec![0_u8; usize::from(u16::from_be_bytes(answer_length))];
    stream.read_exact(&mut answer).await?;
    if answer.get(..2) != query.get(..2) {
        return Err(std::io::Error::other("the recursor answered another query id over TCP"));
    }
    Ok(answer)
}

/// Whether a DNS answer has its TC (truncated) flag set.
fn is_truncated(answer: &[u8]) -> bool {
    answer.get(2).is_some_and(|flags| flags & 0x02 != 0)
}

/// SERVFAIL for `query`, with its question.
fn server_failure(query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.response_code = ResponseCode::ServFail;
    for query in request.queries {
        response.add_query(query);
    }
    response.to_vec().ok()
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
