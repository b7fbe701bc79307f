//! The one port: a TLS listener for `axum::serve` that no single client can
//! stall.
//!
//! ```text
//!  accept() ──▶ take a handshake slot (at most 256 at once)
//!     │          ──▶ TCP accept ──▶ peer blocked for failing? ──yes──▶ close
//!     │                                   │ no
//!     │                                   ▼
//!     │              spawned task, under the handshake deadline (10 s):
//!     │                peek first byte ── not 0x16 ──▶ "400 … speaks HTTPS only", close
//!     │                     │ 0x16
//!     │                     ▼
//!     │                TLS handshake ── fails/late ──▶ count a failure for the peer, close
//!     │                     │ done
//!     └◀── finished streams ◀┘ (a channel)
//! ```
//!
//! `accept()` never waits on one client: handshakes run in their own tasks
//! and only finished streams come out, so a client that opens a connection
//! and sends nothing (slow-loris) costs one slot until the deadline. A peer
//! that fails more than 20 handshakes within a second has its new
//! connections closed at once for a second, which keeps a flood of bad
//! handshakes from one address from eating the CPU others need.
//!
//! The server configuration is read for every connection, so a new one
//! (say, after a rotation the `Identity`/`Roots` objects do not cover)
//! applies to the next connection.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, error, warn};

use crate::cert_info::{CertInfo, PeerRole, cert_info_der};

/// How long a client has from connecting to finishing its TLS handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many handshakes run at once.
pub const DEFAULT_MAX_CONCURRENT_HANDSHAKES: usize = 256;
/// A peer failing more handshakes than this within a second is blocked.
pub const DEFAULT_MAX_FAILURES_PER_SECOND: u32 = 20;
/// How long a blocked peer's connections are closed at once.
pub const DEFAULT_BLOCK_DURATION: Duration = Duration::from_secs(1);
/// How many peers the failure counter remembers.
const FAILURE_TABLE_CAPACITY: usize = 4096;
/// What a client that speaks plain HTTP to the TLS port gets.
pub const PLAIN_HTTP_ANSWER: &str = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nthis drover server speaks HTTPS only: use https://<addr> (and wss:// for agents)\n";
/// The first byte of every TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Where the listener gets the server configuration for each connection.
pub type ServerConfigSource = Arc<dyn Fn() -> Arc<ServerConfig> + Send + Sync>;

type Finished = (TlsStream<TcpStream>, SocketAddr);

/// A TCP listener that yields finished TLS streams; see the module docs.
pub struct TlsListener {
    tcp: TcpListener,
    config: ServerConfigSource,
    handshake_timeout: Duration,
    handshake_slots: Arc<Semaphore>,
    slot: Option<OwnedSemaphorePermit>,
    finished_sender: mpsc::Sender<Finished>,
    finished: mpsc::Receiver<Finished>,
    failures: Arc<FailureLimiter>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TlsListener")
            .field("local_addr", &self.tcp.local_addr().ok())
            .field("handshake_timeout", &self.handshake_timeout)
            .field("free_handshake_slots", &self.handshake_slots.available_permits())
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Listens on `tcp`, calling `config` for every accepted connection.
    pub fn new(tcp: TcpListener, config: ServerConfigSource) -> TlsListener {
        let (finished_sender, finished) = mpsc::channel(DEFAULT_MAX_CONCURRENT_HANDSHAKES);
        TlsListener {
            tcp,
            config,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            handshake_slots: Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENT_HANDSHAKES)),
            slot: None,
            finished_sender,
            finished,
            failures: Arc::new(FailureLimiter::new(DEFAULT_MAX_FAILURES_PER_SECOND, DEFAULT_BLOCK_DURATION)),
        }
    }

    /// Listens on `tcp` with one configuration for every connection (which
    /// still follows its `Identity` and `Roots`).
    pub fn with_server_config(tcp: TcpListener, config: Arc<ServerConfig>) -> TlsListener {
        TlsListener::new(tcp, Arc::new(move || Arc::clone(&config)))
    }

    /// How long a client has from connecting to finishing its handshake
    /// (the first byte included). Default 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> TlsListener {
        self.handshake_timeout = timeout;
        self
    }

    /// How many handshakes may run at once (at least one). Default 256.
    /// Set it before serving.
    pub fn max_concurrent_handshakes(mut self, handshakes: usize) -> TlsListener {
        let handshakes = handshakes.max(1);
        let (finished_sender, finished) = mpsc::channel(handshakes);
        self.handshake_slots = Arc::new(Semaphore::new(handshakes));
        self.slot = None;
        self.finished_sender = finished_sender;
        self.finished = finished;
        self
    }

    /// A peer failing more than `max_failures_per_second` handshakes within
    /// a second has its new connections closed at once for `block_for`.
    /// Default 20 and 1 s.
    pub fn failure_limit(mut self, max_failures_per_second: u32, block_for: Duration) -> TlsListener {
        self.failures = Arc::new(FailureLimiter::new(max_failures_per_second, block_for));
        self
    }

    async fn accept_tls(&mut self) -> Finished {
        loop {
            // Finished handshakes come out while we wait for a slot or a
            // connection; neither wait is on any one client.
            let slot = match self.slot.take() {
                Some(slot) => slot,
                None => tokio::select! {
                    biased;
                    Some(finished) = self.finished.recv() => return finished,
                    slot = Arc::clone(&self.handshake_slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        // The semaphore is ours and never closed.
                        Err(_closed) => continue,
                    },
                },
            };
            self.slot = Some(slot);
            let accepted = tokio::select! {
                biased;
                Some(finished) = self.finished.recv() => return finished,
                accepted = self.tcp.accept() => accepted,
            };
            let (tcp, address) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    handle_accept_error(error).await;
                    continue;
                }
            };
            if self.failures.is_blocked(address.ip(), Instant::now()) {
                debug!(peer = %address, "closing a connection from a peer blocked for failed handshakes");
                drop(tcp);
                continue;
            }
            let Some(slot) = self.slot.take() else { continue };
            let handshake = Handshake {
                tcp,
                address,
                config: (self.config)(),
                timeout: self.handshake_timeout,
                failures: Arc::clone(&self.failures),
                finished: self.finished_sender.clone(),
                _slot: slot,
            };
            tokio::spawn(handshake.run());
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.accept_tls().await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// One connection on its way to becoming a TLS stream.
struct Handshake {
    tcp: TcpStream,
    address: SocketAddr,
    config: Arc<ServerConfig>,
    timeout: Duration,
    failures: Arc<FailureLimiter>,
    finished: mpsc::Sender<Finished>,
    /// Held until the stream is handed over or dropped.
    _slot: OwnedSemaphorePermit,
}

enum HandshakeOutcome {
    Done(Box<TlsStream<TcpStream>>),
    ClosedBeforeHello,
    PlainHttp,
}

impl Handshake {
    async fn run(self) {
        let Handshake { tcp, address, config, timeout, failures, finished, _slot } = self;
        if let Err(error) = tcp.set_nodelay(true) {
            debug!(peer = %address, %error, "cannot set TCP_NODELAY");
        }
        let outcome = tokio::time::timeout(timeout, handshake(tcp, config)).await;
        let failure = match outcome {
            Ok(Ok(HandshakeOutcome::Done(stream))) => {
                // The receiver is gone only when the listener is: nobody to serve.
                let _ = finished.send((*stream, address)).await;
                return;
            }
            Ok(Ok(HandshakeOutcome::ClosedBeforeHello)) => "closed before saying anything".to_owned(),
            Ok(Ok(HandshakeOutcome::PlainHttp)) => "spoke plain HTTP (or something else) to the TLS port".to_owned(),
            Ok(Err(error)) => error.to_string(),
            Err(_elapsed) => format!("did not finish the TLS handshake within {timeout:?}"),
        };
        debug!(peer = %address, reason = %failure, "tls handshake failed");
        failures.record_failure(address.ip(), Instant::now());
    }
}

async fn handshake(mut tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<HandshakeOutcome> {
    let mut first_byte = [0_u8; 1];
    if tcp.peek(&mut first_byte).await? == 0 {
        return Ok(HandshakeOutcome::ClosedBeforeHello);
    }
    if first_byte[0] != TLS_HANDSHAKE_RECORD {
        answer_plain_http(&mut tcp).await?;
        return Ok(HandshakeOutcome::PlainHttp);
    }
    let stream = TlsAcceptor::from(config).accept(tcp).await?;
    Ok(HandshakeOutcome::Done(Box::new(stream)))
}

/// Tells a plain-HTTP client to use HTTPS, then closes gracefully: the
/// request is read away after the answer so that the close does not become
/// a reset that destroys the answer before the client reads it.
async fn answer_plain_http(tcp: &mut TcpStream) -> io::Result<()> {
    const MAX_DRAIN_BYTES: usize = 64 * 1024;
    const MAX_DRAIN_TIME: Duration = Duration::from_secs(2);
    tcp.write_all(PLAIN_HTTP_ANSWER.as_bytes()).await?;
    tcp.shutdown().await?;
    let drain = async {
        let mut buffer = [0_u8; 4096];
        let mut drained = 0;
        while drained < MAX_DRAIN_BYTES {
            match tcp.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => drained += read,
            }
        }
    };
    let _ = tokio::time::timeout(MAX_DRAIN_TIME, drain).await;
    Ok(())
}

/// As axum's own listener: errors about one connection are nobody's
/// business; others (out of file descriptors) get a pause instead of a
/// busy loop.
async fn handle_accept_error(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    error!(%error, "cannot accept a connection; retrying in 1s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Counts failed handshakes per peer over one-second windows and blocks a
/// peer that fails too often. IPv6 peers count per /64, the block a single
/// host usually holds. The table is bounded: when it is full of peers that
/// still matter, new peers are not counted (failing open, not closed).
#[derive(Debug)]
struct FailureLimiter {
    max_failures_per_window: u32,
    window: Duration,
    block_for: Duration,
    peers: Mutex<HashMap<IpAddr, FailureCount>>,
}

#[derive(Debug)]
struct FailureCount {
    window_started: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

impl FailureCount {
    fn matters_at(&self, now: Instant, window: Duration) -> bool {
        self.blocked_until.is_some_and(|until| until > now) || now.duration_since(self.window_started) < window
    }
}

impl FailureLimiter {
    fn new(max_failures_per_window: u32, block_for: Duration) -> FailureLimiter {
        FailureLimiter {
            max_failures_per_window,
            window: Duration::from_secs(1),
            block_for,
            peers: Mutex::new(HashMap::new()),
        }
    }

    fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        let peers = self.peers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        peers.get(&peer_key(ip)).and_then(|count| count.blocked_until).is_some_and(|until| until > now)
    }

    fn record_failure(&self, ip: IpAddr, now: Instant) {
        let key = peer_key(ip);
        let mut peers = self.peers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !peers.contains_key(&key) && peers.len() >= FAILURE_TABLE_CAPACITY {
            let window = self.window;
            peers.retain(|_, count| count.matters_at(now, window));
            if peers.len() >= FAILURE_TABLE_CAPACITY {
                return;
            }
        }
        let count = peers.entry(key).or_insert(FailureCount { window_started: now, failures: 0, blocked_until: None });
        if now.duration_since(count.window_started) >= self.window {
            count.window_started = now;
            count.failures = 0;
        }
        count.failures = count.failures.saturating_add(1);
        let already_blocked = count.blocked_until.is_some_and(|until| until > now);
        if count.failures > self.max_failures_per_window && !already_blocked {
            count.blocked_until = Some(now + self.block_for);
            count.window_started = now;
            count.failures = 0;
            warn!(
                peer = %key,
                failures = self.max_failures_per_window + 1,
                block_for = ?self.block_for,
                "closing new connections from a peer that keeps failing tls handshakes"
            );
        }
    }
}

/// The address a peer is counted under.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1_u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
    }
}

/// Who is on the other end of a connection: what handlers read through
/// `ConnectInfo<PeerInfo>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's address.
    pub address: SocketAddr,
    /// The client certificate the handshake verified against the trusted
    /// roots, if the client presented one. Always `None` without TLS.
    pub certificate: Option<CertInfo>,
}

impl PeerInfo {
    /// The role the verified client certificate gives the peer, if any.
    pub fn role(&self) -> Option<&PeerRole> {
        self.certificate.as_ref().and_then(|certificate| certificate.role.as_ref())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerInfo {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> PeerInfo {
        let address = *stream.remote_addr();
        let (_, connection) = stream.io().get_ref();
        let certificate = connection.peer_certificates().and_then(|chain| chain.first()).and_then(|leaf| {
            match cert_info_der(leaf) {
                Ok(info) => Some(info),
                Err(error) => {
                    // Verified by the handshake yet unreadable here: treat
                    // the peer as having no certificate, the least trusted case.
                    warn!(peer = %address, %error, "cannot read a verified client certificate");
                    None
                }
            }
        });
        PeerInfo { address, certificate }
    }
}

/// Plain TCP (insecure mode): the same `ConnectInfo<PeerInfo>`, without a
/// certificate, so routes have one code path.
impl Connected<IncomingStream<'_, TcpListener>> for PeerInfo {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> PeerInfo {
        PeerInfo { address: *stream.remote_addr(), certificate: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_blocked_after_too_many_failures_and_released_later() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(1));
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let start = Instant::now();
        for _ in 0..3 {
            limiter.record_failure(ip, start);
        }
        assert!(!limiter.is_blocked(ip, start), "three failures are allowed");
        limiter.record_failure(ip, start);
        assert!(limiter.is_blocked(ip, start));
        assert!(!limiter.is_blocked("192.0.2.2".parse().expect("ip"), start), "others are not blocked");
        assert!(!limiter.is_blocked(ip, start + Duration::from_millis(1001)));
    }

    #[test]
    fn failures_in_an_old_window_do_not_count() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(1));
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let start = Instant::now();
        for _ in 0..3 {
            limiter.record_failure(ip, start);
        }
        let later = start + Duration::from_millis(1500);
        limiter.record_failure(ip, later);
        assert!(!limiter.is_blocked(ip, later));
    }

    #[test]
    fn ipv6_peers_count_per_slash_64_and_mapped_ipv4_as_ipv4() {
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let two: IpAddr = "2001:db8:1:2:ffff::2".parse().expect("ip");
        assert_eq!(peer_key(one), peer_key(two));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(peer_key(mapped), "192.0.2.1".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn the_failure_table_stays_bounded() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(1));
        let now = Instant::now();
        for n in 0..(FAILURE_TABLE_CAPACITY as u32 + 100) {
            limiter.record_failure(IpAddr::V4(n.into()), now);
        }
        let peers = limiter.peers.lock().expect("lock");
        assert_eq!(peers.len(), FAILURE_TABLE_CAPACITY);
    }
}
