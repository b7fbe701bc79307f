//! A syslog receiver: UDP and TCP, RFC 3164 and RFC 5424, lenient.
//!
//! Real senders (util-linux `logger`, rsyslog, network gear) rarely follow the
//! RFCs to the letter, so parsing never fails: whatever cannot be recognised
//! stays in the message text, and a message without a `<PRI>` gets the
//! RFC 3164 default of `user.notice`. TCP accepts both framings of RFC 6587,
//! per message: octet counting (`LEN SP MSG`) when a frame starts with
//! digits and a space, otherwise newline-delimited.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::error::{Error, Result};
use crate::{LineSender, Source, SourceExit, SourceFuture, SourceKind, SourceLine};

/// The RFC 3164 default priority of a message without `<PRI>`: facility user, severity notice.
const DEFAULT_FACILITY: u8 = 1;
const DEFAULT_SEVERITY: u8 = 5;

/// How a syslog message reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyslogTransport {
    Udp,
    Tcp,
}

/// Which header format a message had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyslogFormat {
    /// BSD syslog: `<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`.
    #[default]
    Rfc3164,
    /// `<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG`.
    Rfc5424,
    /// Not syslog: the fields were mapped from a systemd journal entry.
    Journal,
}

/// The header fields of a syslog message (also filled from journal entries).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyslogMeta {
    pub format: SyslogFormat,
    /// 0 (kern) to 23 (local7).
    pub facility: u8,
    /// 0 (emerg) to 7 (debug).
    pub severity: u8,
    pub hostname: Option<String>,
    pub app_name: Option<String>,
    pub proc_id: Option<String>,
    pub msg_id: Option<String>,
    /// The timestamp as sent.
    pub timestamp: Option<String>,
    /// The timestamp in microseconds since the Unix epoch, when it carried a
    /// date and a zone (RFC 3339); RFC 3164 timestamps have neither.
    pub timestamp_micros: Option<i64>,
    /// RFC 5424 structured data, as sent (`[id k="v"]...`).
    pub structured_data: Option<String>,
}

/// Parses one syslog message. Never fails: unrecognised parts stay in the text.
pub fn parse_message(input: &[u8]) -> (SyslogMeta, String) {
    let trimmed = trim_message_end(input);
    let text = String::from_utf8_lossy(trimmed);
    let mut meta = SyslogMeta { facility: DEFAULT_FACILITY, severity: DEFAULT_SEVERITY, ..SyslogMeta::default() };
    let rest = match parse_priority(&text) {
        Some((priority, rest)) => {
            meta.facility = priority / 8;
            meta.severity = priority % 8;
            rest
        }
        None => &text,
    };
    let message = match rest.strip_prefix("1 ") {
        Some(after_version) => {
            meta.format = SyslogFormat::Rfc5424;
            parse_rfc5424(after_version, &mut meta)
        }
        None => {
            meta.format = SyslogFormat::Rfc3164;
            parse_rfc3164(rest, &mut meta)
        }
    };
    (meta, message.to_owned())
}

fn trim_message_end(input: &[u8]) -> &[u8] {
    let mut end = input.len();
    while end > 0 && matches!(input[end - 1], b'\n' | b'\r' | b'\0') {
        end -= 1;
    }
    &input[..end]
}

/// `<N>` with one to three digits and N at most 191.
fn parse_priority(text: &str) -> Option<(u8, &str)> {
    let after_open = text.strip_prefix('<')?;
    let close = after_open.find('>')?;
    let digits = &after_open[..close];
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let priority: u8 = digits.parse().ok().filter(|&value| value <= 191)?;
    Some((priority, &after_open[close + 1..]))
}

/// Splits off the next space-separated field; `-` is the nil value.
fn next_field<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let (field, after) = rest.split_once(' ').unwrap_or((rest, ""));
    *rest = after;
    (!field.is_empty() && field != "-").then_some(field)
}

fn parse_rfc5424<'a>(after_version: &'a str, meta: &mut SyslogMeta) -> &'a str {
    let mut rest = after_version;
    if let Some(timestamp) = next_field(&mut rest) {
        meta.timestamp_micros = parse_rfc3339_micros(timestamp);
        meta.timestamp = Some(timestamp.to_owned());
    }
    meta.hostname = next_field(&mut rest).map(str::to_owned);
    meta.app_name = next_field(&mut rest).map(str::to_owned);
    meta.proc_id = next_field(&mut rest).map(str::to_owned);
    meta.msg_id = next_field(&mut rest).map(str::to_owned);
    if let Some(after_nil) = rest.strip_prefix('-') {
        rest = after_nil;
    } else if rest.starts_with('[') {
        let end = structured_data_end(rest);
        meta.structured_data = Some(rest[..end].to_owned());
        rest = &rest[end..];
    }
    let message = rest.strip_prefix(' ').unwrap_or(rest);
    message.strip_prefix('\u{feff}').unwrap_or(message)
}

/// The end of the `[...][...]` structured data at the start of `text`,
/// honouring quoted values with `\"`, `\]` and `\\` escapes.
fn structured_data_end(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut index = 0;
    while bytes.get(index) == Some(&b'[') {
        let mut is_quoted = false;
        index += 1;
        loop {
            match bytes.get(index) {
                None => return bytes.len(),
                Some(b'\\') if is_quoted => index += 2,
                Some(b'"') => {
                    is_quoted = !is_quoted;
                    index += 1;
                }
                Some(b']') if !is_quoted => {
                    index += 1;
                    break;
                }
                Some(_) => index += 1,
            }
        }
    }
    index.min(bytes.len())
}

fn parse_rfc3339_micros(timestamp: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(timestamp).ok().map(|time| time.timestamp_micros())
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `Mmm dd hh:mm:ss` (day space-padded or not), the RFC 3164 timestamp.
fn bsd_timestamp_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.len() < 15 || !MONTHS.iter().any(|month| text.starts_with(month)) || bytes[3] != b' ' {
        return None;
    }
    let is_digit_or_space = |byte: u8| byte.is_ascii_digit() || byte == b' ';
    let time = &bytes[7..15];
    let is_time = time.iter().enumerate().all(|(index, &byte)| match index {
        2 | 5 => byte == b':',
        _ => byte.is_ascii_digit(),
    });
    (is_digit_or_space(bytes[4]) && bytes[5].is_ascii_digit() && bytes[6] == b' ' && is_time).then_some(15)
}

fn parse_rfc3164<'a>(header: &'a str, meta: &mut SyslogMeta) -> &'a str {
    let mut rest = header;
    let mut has_timestamp = false;
    if let Some(len) = bsd_timestamp_len(rest) {
        meta.timestamp = Some(rest[..len].to_owned());
        rest = rest[len..].trim_start_matches(' ');
        has_timestamp = true;
    } else if let Some((first, after)) = rest.split_once(' ')
        && let Some(micros) = parse_rfc3339_micros(first)
    {
        // rsyslog's high-precision format puts an RFC 3339 timestamp here.
        meta.timestamp = Some(first.to_owned());
        meta.timestamp_micros = Some(micros);
        rest = after;
        has_timestamp = true;
    }
    if has_timestamp && let Some((first, after)) = rest.split_once(' ') {
        // `HOST TAG: msg`, unless the first word already is the tag.
        let is_tag = first.ends_with(':') || first.contains('[');
        if !is_tag && !first.is_empty() {
            meta.hostname = Some(first.to_owned());
            rest = after;
        }
    }
    parse_tag(rest, meta)
}

/// `TAG: msg` or `TAG[PID]: msg`; anything else is all message.
fn parse_tag<'a>(text: &'a str, meta: &mut SyslogMeta) -> &'a str {
    let Some(end) = text.find([':', '[', ' ']) else { return text };
    let tag = &text[..end];
    if tag.is_empty() || tag.len() > 64 {
        return text;
    }
    let after_tag = &text[end..];
    let (proc_id, after_colon) = if let Some(after_open) = after_tag.strip_prefix('[') {
        let Some((proc_id, after_close)) = after_open.split_once(']') else { return text };
        let Some(after_colon) = after_close.strip_prefix(':') else { return text };
        (Some(proc_id), after_colon)
    } else if let Some(after_colon) = after_tag.strip_prefix(':') {
        (None, after_colon)
    } else {
        return text;
    };
    meta.app_name = Some(tag.to_owned());
    meta.proc_id = proc_id.filter(|proc_id| !proc_id.is_empty()).map(str::to_owned);
    after_colon.strip_prefix(' ').unwrap_or(after_colon)
}

/// A message framed from a TCP stream, or a piece of one longer than
/// `max_message_bytes` ([`crate::split`]).
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    bytes: Vec<u8>,
    /// A piece that continues the previous frame's message.
    is_continuation: bool,
    /// More of this message follows.
    continues: bool,
}

/// Cuts a TCP byte stream into messages (RFC 6587, both framings). A
/// message longer than `max_message_bytes` comes out in pieces of that
/// size, never dropped.
#[derive(Debug)]
struct TcpFramer {
    buffer: Vec<u8>,
    /// Where the unconsumed bytes start.
    start: usize,
    max_message_bytes: usize,
    /// Bytes of an octet-counted message being cut into pieces still to come.
    num_counted_left: usize,
    /// The last frame was a piece of a newline-delimited message that
    /// continues.
    is_continuing: bool,
}

impl TcpFramer {
    fn new(max_message_bytes: usize) -> TcpFramer {
        TcpFramer {
            buffer: Vec::new(),
            start: 0,
            max_message_bytes: max_message_bytes.max(4),
            num_counted_left: 0,
            is_continuing: false,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buffer.len() {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    fn take(&mut self, len: usize, is_continuation: bool, continues: bool) -> Frame {
        let bytes = self.buffer[self.start..self.start + len].to_vec();
        self.start += len;
        Frame { bytes, is_continuation, continues }
    }

    /// The next complete message (or piece), if any.
    fn next_frame(&mut self) -> Option<Frame> {
        let max = self.max_message_bytes;
        if self.num_counted_left > 0 {
            let available = self.buffer.len() - self.start;
            let len = self.num_counted_left.min(max);
            if available < len {
                return None;
            }
            self.num_counted_left -= len;
            let continues = self.num_counted_left > 0;
            return Some(self.take(len, true, continues));
        }
        if !self.is_continuing {
            while matches!(self.buffer.get(self.start), Some(b'\n' | b'\r' | b'\0')) {
                self.start += 1;
            }
        }
        let pending = &self.buffer[self.start..];
        if pending.is_empty() {
            return None;
        }
        let num_digits = pending.iter().take(10).take_while(|byte| byte.is_ascii_digit()).count();
        if !self.is_continuing && (1..10).contains(&num_digits) && pending.get(num_digits) == Some(&b' ') {
            let len: usize = std::str::from_utf8(&pending[..num_digits]).ok()?.parse().ok()?;
            let body_start = num_digits + 1;
            let first_len = len.min(max);
            if pending.len() < body_start + first_len {
                return None;
            }
            self.start += body_start;
            self.num_counted_left = len - first_len;
            let continues = self.num_counted_left > 0;
            return Some(self.take(first_len, false, continues));
        }
        let is_continuation = self.is_continuing;
        let limit = pending.len().min(max + 1);
        if let Some(newline) = pending[..limit].iter().position(|&byte| byte == b'\n') {
            self.is_continuing = false;
            let frame = self.take(newline, is_continuation, false);
            self.start += 1;
            return Some(frame);
        }
        if pending.len() > max {
            let cut = crate::split::utf8_cut(&pending[..max]);
            self.is_continuing = true;
            return Some(self.take(cut, is_continuation, true));
        }
        None
    }

    /// A newline-delimited message still waiting for its newline, sent as
    /// it is (the sender went quiet: a last line without a newline on a
    /// connection left open). An octet-counted message waits for its
    /// count.
    fn flush_partial(&mut self) -> Option<Frame> {
        if self.num_counted_left > 0 {
            return None;
        }
        let pending = &self.buffer[self.start..];
        let num_digits = pending.iter().take(10).take_while(|byte| byte.is_ascii_digit()).count();
        let is_counted = !self.is_continuing && (1..10).contains(&num_digits) && pending.get(num_digits) == Some(&b' ');
        if pending.is_empty() || is_counted {
            return None;
        }
        let is_continuation = self.is_continuing;
        self.is_continuing = false;
        Some(self.take(pending.len(), is_continuation, false))
    }

    /// What is left when the connection closes: a last message without a
    /// newline, or what came of a counted one.
    fn finish(&mut self) -> Option<Frame> {
        let frame = self.next_frame().or_else(|| {
            let pending = &self.buffer[self.start..];
            if pending.is_empty() {
                return None;
            }
            let is_continuation = self.is_continuing || self.num_counted_left > 0;
            Some(Frame { bytes: pending.to_vec(), is_continuation, continues: false })
        });
        self.start = self.buffer.len();
        self.num_counted_left = 0;
        self.is_continuing = false;
        frame
    }
}

/// The configuration of a syslog source.
#[derive(Debug, Clone)]
pub struct SyslogConfig {
    /// Where to receive UDP datagrams, e.g. `0.0.0.0:514`.
    pub udp: Option<SocketAddr>,
    /// Where to accept TCP connections.
    pub tcp: Option<SocketAddr>,
    /// Longer messages come in marked pieces ([`crate::split`]; TCP), or
    /// are bounded by the datagram size (UDP, 64 KiB).
    pub max_message_bytes: usize,
    /// A message without its newline on a TCP connection left open is sent
    /// once nothing came for this long.
    pub partial_line_idle: std::time::Duration,
}

impl SyslogConfig {
    /// Listens on both transports at `addr`.
    pub fn new(addr: SocketAddr) -> SyslogConfig {
        SyslogConfig {
            udp: Some(addr),
            tcp: Some(addr),
            max_message_bytes: crate::MAX_LINE_BYTES,
            partial_line_idle: std::time::Duration::from_secs(5),
        }
    }
}

/// The syslog source, with its sockets bound.
#[derive(Debug)]
pub struct SyslogSource {
    udp: Option<UdpSocket>,
    tcp: Option<TcpListener>,
    max_message_bytes: usize,
    partial_line_idle: std::time::Duration,
}

impl SyslogSource {
    /// Binds the configured sockets.
    pub async fn bind(config: SyslogConfig) -> Result<SyslogSource> {
        let udp = match config.udp {
            Some(addr) => {
                Some(UdpSocket::bind(addr).await.map_err(|source| Error::Bind { transport: "UDP", addr, source })?)
            }
            None => None,
        };
        let tcp = match config.tcp {
            Some(addr) => {
                Some(TcpListener::bind(addr).await.map_err(|source| Error::Bind { transport: "TCP", addr, source })?)
            }
            None => None,
        };
        Ok(SyslogSource {
            udp,
            tcp,
            max_message_bytes: config.max_message_bytes.max(1),
            partial_line_idle: config.partial_line_idle,
        })
    }

    /// The bound UDP address (useful with port 0).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|socket| socket.local_addr().ok())
    }

    /// The bound TCP address (useful with port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// Receives messages until `cancel` fires or `sink` is closed.
    pub async fn run(self, sink: LineSender, cancel: CancellationToken) -> Result<SourceExit> {
        let stream: Arc<str> = Arc::from("syslog");
        let mut tasks = JoinSet::new();
        if let Some(socket) = self.udp {
            tasks.spawn(receive_udp(socket, sink.clone(), cancel.clone(), stream.clone()));
        }
        if let Some(listener) = self.tcp {
            let limits =
                TcpLimits { max_message_bytes: self.max_message_bytes, partial_line_idle: self.partial_line_idle };
            tasks.spawn(accept_tcp(listener, sink.clone(), cancel.clone(), stream, limits));
        }
        drop(sink);
        while tasks.join_next().await.is_some() {}
        Ok(SourceExit::Stopped)
    }
}

impl Source for SyslogSource {
    fn run(self: Box<Self>, sink: LineSender, cancel: CancellationToken) -> SourceFuture {
        Box::pin(SyslogSource::run(*self, sink, cancel))
    }
}

fn line_from(frame: &[u8], peer: SocketAddr, transport: SyslogTransport, stream: &Arc<str>) -> SourceLine {
    let (meta, text) = parse_message(frame);
    SourceLine {
        source: SourceKind::Syslog { peer, transport },
        stream: stream.clone(),
        received: SystemTime::now(),
        text,
        syslog: Some(Box::new(meta)),
        checkpoint: None,
    }
}

/// Sends or gives up when cancelled; false when the source should stop.
async fn send(sink: &LineSender, cancel: &CancellationToken, line: SourceLine) -> bool {
    tokio::select! {
        sent = sink.send(line) => sent.is_ok(),
        () = cancel.cancelled() => false,
    }
}

async fn receive_udp(socket: UdpSocket, sink: LineSender, cancel: CancellationToken, stream: Arc<str>) {
    let mut buffer = vec![0u8; 65536];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buffer) => received,
            () = cancel.cancelled() => return,
            () = sink.closed() => return,
        };
        match received {
            Ok((len, peer)) => {
                let line = line_from(&buffer[..len], peer, SyslogTransport::Udp, &stream);
                if !send(&sink, &cancel, line).await {
                    return;
                }
            }
            // ICMP errors and the like surface here; they concern one datagram only.
            Err(err) => debug!(error = %err, "syslog udp receive failed"),
        }
    }
}

/// How TCP messages are framed.
#[derive(Clone, Copy, Debug)]
struct TcpLimits {
    max_message_bytes: usize,
    partial_line_idle: std::time::Duration,
}

async fn accept_tcp(
    listener: TcpListener,
    sink: LineSender,
    cancel: CancellationToken,
    stream: Arc<str>,
    limits: TcpLimits,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = cancel.cancelled() => break,
            () = sink.closed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        match accepted {
            Ok((socket, peer)) => {
                connections.spawn(receive_tcp(socket, peer, sink.clone(), cancel.clone(), stream.clone(), limits));
            }
            Err(err) => {
                warn!(error = %err, "syslog tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    connections.shutdown().await;
}

async fn receive_tcp(
    mut socket: TcpStream,
    peer: SocketAddr,
    sink: LineSender,
    cancel: CancellationToken,
    stream: Arc<str>,
    limits: TcpLimits,
) {
    let mut framer = TcpFramer::new(limits.max_message_bytes);
    let mut pieces = Pieces::default();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            read = tokio::time::timeout(limits.partial_line_idle, socket.read(&mut buffer)) => read,
            () = cancel.cancelled() => return,
        };
        let count = match read {
            Err(_idle) => {
                if let Some(frame) = framer.flush_partial()
                    && !send(&sink, &cancel, pieces.line(frame, peer, &stream)).await
                {
                    return;
                }
                continue;
            }
            Ok(Ok(0)) => break,
            Ok(Ok(count)) => count,
            Ok(Err(err)) => {
                debug!(%peer, error = %err, "syslog tcp connection failed");
                break;
            }
        };
        framer.push(&buffer[..count]);
        while let Some(frame) = framer.next_frame() {
            if !send(&sink, &cancel, pieces.line(frame, peer, &stream)).await {
                return;
            }
        }
    }
    if let Some(frame) = framer.finish() {
        send(&sink, &cancel, pieces.line(frame, peer, &stream)).await;
    }
}

/// Turns frames into lines: the header of a message split into pieces is
/// read from its first piece and given to the others.
#[derive(Debug, Default)]
struct Pieces {
    meta: Option<SyslogMeta>,
}

impl Pieces {
    fn line(&mut self, frame: Frame, peer: SocketAddr, stream: &Arc<str>) -> SourceLine {
        let Frame { bytes, is_continuation, continues } = frame;
        let (meta, text) = match (is_continuation, self.meta.take()) {
            (true, Some(meta)) => (meta, String::from_utf8_lossy(&bytes).into_owned()),
            _ => parse_message(&bytes),
        };
        if continues {
            self.meta = Some(meta.clone());
        }
        SourceLine {
            source: SourceKind::Syslog { peer, transport: SyslogTransport::Tcp },
            stream: stream.clone(),
            received: SystemTime::now(),
            text: crate::split::mark_piece(text, is_continuation, continues),
            syslog: Some(Box::new(meta)),
            checkpoint: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3164_rfc_example() {
        let (meta, text) =
            parse_message(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(text, "'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(meta.format, SyslogFormat::Rfc3164);
        assert_eq!((meta.facility, meta.severity), (4, 2));
        assert_eq!(meta.timestamp.as_deref(), Some("Oct 11 22:14:15"));
        assert_eq!(meta.hostname.as_deref(), Some("mymachine"));
        assert_eq!(meta.app_name.as_deref(), Some("su"));
        assert_eq!(meta.proc_id, None);
    }

    #[test]
    fn rfc3164_variants() {
        let (meta, text) = parse_message(b"<13>Nov  2 07:28:39 vm mytag[42]: hello udp\n");
        assert_eq!(text, "hello udp");
        assert_eq!(meta.hostname.as_deref(), Some("vm"));
        assert_eq!(meta.app_name.as_deref(), Some("mytag"));
        assert_eq!(meta.proc_id.as_deref(), Some("42"));

        // No hostname: the first word is the tag.
        let (meta, text) = parse_message(b"<13>Nov 22 07:28:39 cron[7]: job done");
        assert_eq!((meta.hostname, meta.app_name.as_deref(), text.as_str()), (None, Some("cron"), "job done"));

        // No timestamp at all (what /dev/log senders often send).
        let (meta, text) = parse_message(b"<30>sshd: accepted key");
        assert_eq!((meta.app_name.as_deref(), text.as_str()), (Some("sshd"), "accepted key"));

        // rsyslog's high-precision timestamp.
        let (meta, text) = parse_message(b"<14>2003-10-11T22:14:15.003Z host app: hi");
        assert_eq!(meta.timestamp_micros, Some(1_065_910_455_003_000));
        assert_eq!((meta.hostname.as_deref(), text.as_str()), (Some("host"), "hi"));
    }

    #[test]
    fn rfc5424_rfc_examples() {
        let (meta, text) = parse_message(
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \u{feff}An application event log entry...".as_bytes(),
        );
        assert_eq!(text, "An application event log entry...");
        assert_eq!(meta.format, SyslogFormat::Rfc5424);
        assert_eq!((meta.facility, meta.severity), (20, 5));
        assert_eq!(meta.hostname.as_deref(), Some("mymachine.example.com"));
        assert_eq!(meta.app_name.as_deref(), Some("evntslog"));
        assert_eq!(meta.proc_id, None);
        assert_eq!(meta.msg_id.as_deref(), Some("ID47"));
        assert_eq!(
            meta.structured_data.as_deref(),
            Some("[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]")
        );
        assert_eq!(meta.timestamp_micros, Some(1_065_910_455_003_000));

        let (meta, text) = parse_message(b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(text, "BOM'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(meta.structured_data, None);

        // Escaped brackets and quotes in SD values, several elements, no message.
        let (meta, text) = parse_message(br#"<13>1 - - - - - [a x="q\]\"z"][b y="1"]"#);
        assert_eq!(meta.structured_data.as_deref(), Some(r#"[a x="q\]\"z"][b y="1"]"#));
        assert_eq!((meta.timestamp, meta.hostname, text.as_str()), (None, None, ""));
    }

    #[test]
    fn logger_samples() {
        let (meta, text) = parse_message(
            b"<13>1 2026-11-22T07:28:39.752931+00:00 vm mytag 42 - [timeQuality tzKnown=\"1\" isSynced=\"0\"] hello udp",
        );
        assert_eq!(text, "hello udp");
        assert_eq!(meta.proc_id.as_deref(), Some("42"));
        assert_eq!(meta.app_name.as_deref(), Some("mytag"));
        assert_eq!(meta.timestamp.as_deref(), Some("2026-11-22T07:28:39.752931+00:00"));
    }

    #[test]
    fn garbage_never_fails() {
        for input in [&b""[..], b"<", b"<999>x", b"<12", b"<1>1", b"<1>1 ", b"\xff\xfe", b"<13>1 [unclosed", b"<5>Oct"]
        {
            let (meta, _) = parse_message(input);
            assert!(meta.facility <= 23 && meta.severity <= 7);
        }
        let (meta, text) = parse_message(b"<999>plain text");
        assert_eq!((meta.facility, meta.severity, text.as_str()), (1, 5, "<999>plain text"));
    }

    fn frames(framer: &mut TcpFramer) -> Vec<String> {
        std::iter::from_fn(|| framer.next_frame())
            .map(|frame| {
                let text = String::from_utf8(frame.bytes).unwrap();
                let marked = crate::split::mark_piece(text, frame.is_continuation, frame.continues);
                marked.replace(crate::CONTINUES_MARKER, "+").replace(crate::CONTINUED_MARKER, "+")
            })
            .collect()
    }

    #[test]
    fn tcp_framing_octet_counted_and_newline() {
        let mut framer = TcpFramer::new(1024);
        framer.push(b"5 hello9 <13>a\nb c\n<14>plain\n<15>part");
        assert_eq!(frames(&mut framer), vec!["hello", "<13>a\nb c", "<14>plain"]);
        framer.push(b"ial\n3 ab");
        assert_eq!(frames(&mut framer), vec!["<15>partial"]);
        framer.push(b"c");
        assert_eq!(frames(&mut framer), vec!["abc"]);
        framer.push(b"<16>no newline at close");
        assert!(framer.next_frame().is_none());
        assert_eq!(framer.finish().unwrap().bytes, b"<16>no newline at close");
    }

    #[test]
    fn tcp_framing_splits_long_messages_into_marked_pieces() {
        let mut framer = TcpFramer::new(4);
        framer.push(b"10 0123456789");
        assert_eq!(frames(&mut framer), vec!["0123+", "+4567+", "+89"]);
        framer.push(b"abcdefghij\n");
        assert_eq!(frames(&mut framer), vec!["abcd+", "+efgh+", "+ij"]);
        let mut counted = TcpFramer::new(4);
        counted.push(b"6 abcde");
        assert_eq!(frames(&mut counted), vec!["abcd+"]);
        counted.push(b"f1 x");
        assert_eq!(frames(&mut counted), vec!["+ef", "x"]);
    }

    #[test]
    fn a_partial_message_is_flushed_when_the_sender_goes_quiet() {
        let mut framer = TcpFramer::new(1024);
        framer.push(b"<13>done\n<13>prompt> ");
        assert_eq!(frames(&mut framer), vec!["<13>done"]);
        assert_eq!(framer.flush_partial().unwrap().bytes, b"<13>prompt> ");
        assert!(framer.flush_partial().is_none());
        // An octet-counted message waits for its count.
        framer.push(b"9 <13>ab");
        assert!(framer.flush_partial().is_none());
        framer.push(b"cde");
        assert_eq!(frames(&mut framer), vec!["<13>abcde"]);
    }
}
