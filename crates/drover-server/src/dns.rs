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
//!  any other zone               REFUSED
//! ```
//!
//! The records live in a [`Zone`], rebuilt from the state whenever it
//! changes (a watch on the applied states: changes that arrive during a
//! rebuild are folded into the next one), and read by every query without
//! a lock held across I/O. Answering is a pure function of a zone and the
//! query's bytes ([`Zone::respond`]), unit-tested without sockets; the
//! sockets are the thin shell of [`serve`]. Messages are parsed and encoded
//! by `hickory-proto`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
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

/// Where and how the DNS interface listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsSettings {
    /// The UDP and TCP address (`--dns-bind`).
    pub bind: SocketAddr,
    /// The TTL of every answer, in seconds (`--dns-ttl`).
    pub ttl: u32,
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
        let request = match Message::from_vec(query) {
            Ok(request) => request,
            Err(_) => {
                // Answer FORMERR when at least the id is readable.
                let id = u16::from_be_bytes([*query.first()?, *query.get(1)?]);
                return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr).to_vec().ok();
            }
        };
        if request.metadata.message_type != MessageType::Query {
            return None;
        }
        let response = self.answer(&request);
        let bytes = response.to_vec().ok()?;
        let Some(transport_limit) = udp_limit else {
            return Some(bytes);
        };
        let limit = request
            .edns
            .as_ref()
            .map_or(512, |edns| usize::from(edns.max_payload()).max(512))
            .min(transport_limit)
            .min(MAX_UDP_ANSWER);
        if bytes.len() <= limit {
            return Some(bytes);
        }
        response.truncate().to_vec().ok()
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
/// server shuts down.
pub async fn serve(server: &Server, settings: DnsSettings) -> std::io::Result<DnsListener> {
    let udp = UdpSocket::bind(settings.bind).await?;
    let local_addr = udp.local_addr()?;
    let tcp = TcpListener::bind(local_addr).await?;
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
    tokio::spawn(shutdown.clone().run_until_cancelled_owned(answer_udp(udp, zone.clone())));
    tokio::spawn(shutdown.clone().run_until_cancelled_owned(answer_tcp(tcp, zone, shutdown.clone())));
    tracing::info!(address = %local_addr, ttl = settings.ttl, "DNS interface listening (UDP and TCP) for the zone drover.");
    Ok(DnsListener { local_addr })
}

async fn answer_udp(socket: UdpSocket, zone: watch::Receiver<Arc<Zone>>) {
    let mut buffer = vec![0_u8; 4096];
    loop {
        let (length, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                tracing::debug!(%error, "DNS: receiving a UDP query failed");
                continue;
            }
        };
        let current = zone.borrow().clone();
        let Some(answer) = current.respond(&buffer[..length], Some(MAX_UDP_ANSWER)) else {
            continue;
        };
        if let Err(error) = socket.send_to(&answer, peer).await {
            tracing::debug!(%error, %peer, "DNS: sending a UDP answer failed");
        }
    }
}

async fn answer_tcp(
    listener: TcpListener,
    zone: watch::Receiver<Arc<Zone>>,
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
        let zone = zone.clone();
        tokio::spawn(shutdown.clone().run_until_cancelled_owned(async move {
            if let Err(error) = answer_tcp_client(stream, zone).await {
                tracing::debug!(%error, %peer, "DNS: TCP client ended");
            }
        }));
    }
}

/// Answers one TCP client's queries (each prefixed by its 2-byte length,
/// RFC 1035 4.2.2) until it closes or stays idle.
async fn answer_tcp_client(mut stream: TcpStream, zone: watch::Receiver<Arc<Zone>>) -> std::io::Result<()> {
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
        let Some(answer) = current.respond(&query, None) else {
            continue;
        };
        let Ok(answer_length) = u16::try_from(answer.len()) else {
            continue;
        };
        stream.write_all(&answer_length.to_be_bytes()).await?;
        stream.write_all(&answer).await?;
    }
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
