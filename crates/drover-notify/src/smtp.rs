//! The e-mail channel: a small SMTP client on tokio (RFC 5321).
//!
//! One connection per message: greeting, `EHLO` (falling back to `HELO`),
//! `AUTH PLAIN` when credentials are given and the relay offers it,
//! `MAIL FROM`, one `RCPT TO` per recipient, `DATA` with the message
//! dot-stuffed, `QUIT`. Every recipient must be accepted before `DATA`:
//! a rejected one aborts the message, so a retry never sends a duplicate
//! to the others. A 4xx reply or a broken connection may pass and is
//! retried; a 5xx reply is permanent.
//!
//! There is no TLS (`STARTTLS`): drover sends to a relay on the site's own
//! network, the usual port-25 smarthost of a data centre. Credentials are
//! sent only when the relay offers `AUTH PLAIN`, in clear text: give them
//! only for a relay on a trusted network.
//!
//! The message is plain text, UTF-8: 7-bit as it is when it can be,
//! base64 otherwise; a non-ASCII subject is an RFC 2047 encoded word.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use drover_react::template::Escape;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::error::DeliveryError;
use crate::notifier::{EmailConfig, SmtpAuth, render};
use drover_react::delivery::DeliveryId;
use drover_react::delivery::Notification;

/// Longest reply line read (RFC 5321 allows 512 octets).
const MAX_REPLY_LINE: usize = 4096;
/// Most lines of one multi-line reply.
const MAX_REPLY_LINES: usize = 200;
/// Longest line of a 7-bit body (RFC 5322 allows 998 octets).
const MAX_BODY_LINE: usize = 998;

/// One reply: its code and its text lines.
#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines.join(" / ")
    }
}

struct Session<S> {
    stream: BufReader<S>,
    relay: String,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    async fn read_reply(&mut self, after: &str) -> Result<Reply, DeliveryError> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = self.stream.read_line(&mut line).await.map_err(|error| {
                DeliveryError::retryable(format!("SMTP {}: reading the reply to {after}: {error}", self.relay))
            })?;
            if read == 0 {
                return Err(DeliveryError::retryable(format!(
                    "SMTP {}: the relay closed the connection after {after}",
                    self.relay
                )));
            }
            if line.len() > MAX_REPLY_LINE || lines.len() >= MAX_REPLY_LINES {
                return Err(DeliveryError::retryable(format!("SMTP {}: reply to {after} is too long", self.relay)));
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let code = line.get(..3).and_then(|digits| digits.parse::<u16>().ok()).filter(|code| *code >= 200);
            let Some(code) = code else {
                return Err(DeliveryError::retryable(format!(
                    "SMTP {}: not an SMTP reply to {after}: {line:?}",
                    self.relay
                )));
            };
            let separator = line.as_bytes().get(3).copied();
            lines.push(line.get(4..).unwrap_or("").to_owned());
            if separator != Some(b'-') {
                return Ok(Reply { code, lines });
            }
        }
    }

    async fn send_line(&mut self, line: &str, shown_as: &str) -> Result<(), DeliveryError> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write_all(&bytes, shown_as).await
    }

    async fn write_all(&mut self, bytes: &[u8], shown_as: &str) -> Result<(), DeliveryError> {
        let stream = self.stream.get_mut();
        stream
            .write_all(bytes)
            .await
            .map_err(|error| DeliveryError::retryable(format!("SMTP {}: sending {shown_as}: {error}", self.relay)))?;
        stream
            .flush()
            .await
            .map_err(|error| DeliveryError::retryable(format!("SMTP {}: sending {shown_as}: {error}", self.relay)))
    }

    /// Sends `command` and expects a reply with a code in `expected`.
    async fn command(&mut self, command: &str, shown_as: &str, expected: &[u16]) -> Result<Reply, DeliveryError> {
        self.send_line(command, shown_as).await?;
        let reply = self.read_reply(shown_as).await?;
        self.expect(reply, shown_as, expected)
    }

    fn expect(&self, reply: Reply, after: &str, expected: &[u16]) -> Result<Reply, DeliveryError> {
        if expected.contains(&reply.code) {
            return Ok(reply);
        }
        let message = format!("SMTP {}: {after} answered {} {}", self.relay, reply.code, reply.text());
        // 4xx: a transient condition (mailbox busy, greylisting); 5xx: no.
        if (400..500).contains(&reply.code) {
            Err(DeliveryError::retryable(message))
        } else {
            Err(DeliveryError::permanent(message))
        }
    }
}

pub(crate) async fn deliver(
    config: &EmailConfig,
    delivery: &DeliveryId,
    notification: &Notification,
) -> Result<(), DeliveryError> {
    let subject = render(&config.subject, notification, Escape::None);
    let body = match &config.body {
        Some(template) => render(template, notification, Escape::None),
        None => notification.text(),
    };
    for address in std::iter::once(&config.from).chain(&config.to) {
        check_address(address)?;
    }
    if config.to.is_empty() {
        return Err(DeliveryError::permanent("the e-mail notifier has no recipient"));
    }
    let message = message(config, delivery, &subject, &body, chrono::Utc::now());
    let stream = TcpStream::connect(&config.smtp)
        .await
        .map_err(|error| DeliveryError::retryable(format!("SMTP {}: cannot connect: {error}", config.smtp)))?;
    let hello_name = match &config.hello_name {
        Some(name) => name.clone(),
        None => match stream.local_addr() {
            Ok(std::net::SocketAddr::V4(address)) => format!("[{}]", address.ip()),
            Ok(std::net::SocketAddr::V6(address)) => format!("[IPv6:{}]", address.ip()),
            Err(_) => "drover".to_owned(),
        },
    };
    let mut session = Session { stream: BufReader::new(stream), relay: config.smtp.clone() };
    let greeting = session.read_reply("connecting").await?;
    session.expect(greeting, "the greeting", &[220])?;
    send_message(&mut session, config, &hello_name, &message).await
}

async fn send_message<S: AsyncRead + AsyncWrite + Unpin>(
    session: &mut Session<S>,
    config: &EmailConfig,
    hello_name: &str,
    message: &str,
) -> Result<(), DeliveryError> {
    let extensions = match session.command(&format!("EHLO {hello_name}"), "EHLO", &[250]).await {
        Ok(reply) => reply.lines,
        Err(error) if error.permanent => {
            // An old relay without ESMTP.
            session.command(&format!("HELO {hello_name}"), "HELO", &[250]).await?;
            Vec::new()
        }
        Err(error) => return Err(error),
    };
    if let Some(auth) = &config.auth {
        authenticate(session, auth, &extensions).await?;
    }
    session.command(&format!("MAIL FROM:<{}>", config.from), "MAIL FROM", &[250]).await?;
    for recipient in &config.to {
        session.command(&format!("RCPT TO:<{recipient}>"), &format!("RCPT TO:<{recipient}>"), &[250, 251]).await?;
    }
    session.command("DATA", "DATA", &[354]).await?;
    session.write_all(dot_stuff(message).as_bytes(), "the message").await?;
    let reply = session.read_reply("the message").await?;
    session.expect(reply, "the end of the message", &[250])?;
    // The message is accepted; a relay that hangs up without answering QUIT
    // changes nothing.
    let _ = session.command("QUIT", "QUIT", &[221]).await;
    Ok(())
}

async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    session: &mut Session<S>,
    auth: &SmtpAuth,
    extensions: &[String],
) -> Result<(), DeliveryError> {
    let offers_plain = extensions.iter().any(|line| {
        let mut words = line.split_whitespace();
        words.next().is_some_and(|keyword| keyword.eq_ignore_ascii_case("AUTH"))
            && words.any(|mechanism| mechanism.eq_ignore_ascii_case("PLAIN"))
    });
    if !offers_plain {
        return Err(DeliveryError::permanent(format!(
            "SMTP {}: credentials are configured but the relay does not offer AUTH PLAIN",
            session.relay
        )));
    }
    let token = BASE64.encode(format!("\0{}\0{}", auth.username, auth.password));
    session.command(&format!("AUTH PLAIN {token}"), "AUTH PLAIN", &[235]).await?;
    Ok(())
}

/// Refuses addresses that would break the SMTP dialogue or the headers.
fn check_address(address: &str) -> Result<(), DeliveryError> {
    let is_bad = |character: char| character.is_control() || matches!(character, '<' | '>' | ' ');
    if address.is_empty() || address.chars().any(is_bad) || !address.contains('@') {
        return Err(DeliveryError::permanent(format!("{address:?} is not an e-mail address")));
    }
    Ok(())
}

/// The message text (headers and body) with CRLF line ends, not yet
/// dot-stuffed.
fn message(
    config: &EmailConfig,
    delivery: &DeliveryId,
    subject: &str,
    body: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let body_lines: Vec<&str> = body.split('\n').map(|line| line.trim_end_matches('\r')).collect();
    let is_seven_bit = body.is_ascii() && body_lines.iter().all(|line| line.len() <= MAX_BODY_LINE);
    let mut text = String::with_capacity(body.len() + 512);
    let mut header = |name: &str, value: &str| {
        text.push_str(name);
        text.push_str(": ");
        text.push_str(value);
        text.push_str("\r\n");
    };
    header("Date", &now.to_rfc2822());
    header("From", &config.from);
    header("To", &config.to.join(", "));
    header("Subject", &encode_subject(subject));
    header("Message-ID", &format!("<{delivery}@drover>"));
    header("MIME-Version", "1.0");
    header("Content-Type", "text/plain; charset=utf-8");
    header("Content-Transfer-Encoding", if is_seven_bit { "7bit" } else { "base64" });
    header(crate::webhook::DELIVERY_HEADER, &delivery.to_string());
    text.push_str("\r\n");
    if is_seven_bit {
        for line in &body_lines {
            text.push_str(line);
            text.push_str("\r\n");
        }
    } else {
        let normalised = body_lines.join("\r\n");
        let encoded = BASE64.encode(normalised.as_bytes());
        for chunk in encoded.as_bytes().chunks(76) {
            text.push_str(&String::from_utf8_lossy(chunk));
            text.push_str("\r\n");
        }
    }
    text
}

/// A subject as a header value: control characters (a newline would start
/// a new header) become spaces; non-ASCII text becomes RFC 2047 encoded
/// words of at most 75 characters, folded.
fn encode_subject(subject: &str) -> String {
    let clean: String = subject.chars().map(|character| if character.is_control() { ' ' } else { character }).collect();
    if clean.is_ascii() {
        return clean.chars().take(900).collect();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for character in clean.chars() {
        // 45 bytes encode to 60 characters, 72 with the `=?UTF-8?B?…?=`.
        if chunk.len() + character.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", BASE64.encode(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(character);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", BASE64.encode(chunk.as_bytes())));
    }
    words.join("\r\n ")
}

/// `message` (CRLF line ends) with every line starting with `.` given a
/// second one, and the `.` line that ends `DATA`.
fn dot_stuff(message: &str) -> String {
    let mut stuffed = String::with_capacity(message.len() + 16);
    for line in message.split_inclusive("\r\n") {
        if line.starts_with('.') {
            stuffed.push('.');
        }
        stuffed.push_str(line);
    }
    if !stuffed.ends_with("\r\n") {
        stuffed.push_str("\r\n");
    }
    stuffed.push_str(".\r\n");
    stuffed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::notifier::{DEFAULT_EMAIL_SUBJECT, parse_alert_template};
    use drover_react::fixtures::tmp_full;

    fn config(smtp: String) -> EmailConfig {
        EmailConfig {
            smtp,
            from: "drover@example.org".to_owned(),
            to: vec!["ops@example.org".to_owned(), "oncall@example.org".to_owned()],
            subject: parse_alert_template(DEFAULT_EMAIL_SUBJECT).unwrap(),
            body: None,
            auth: None,
            hello_name: None,
        }
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff("a\r\n.b\r\n..c\r\n"), "a\r\n..b\r\n...c\r\n.\r\n");
        assert_eq!(dot_stuff(".\r\nend"), "..\r\nend\r\n.\r\n");
    }

    #[test]
    fn subjects_are_one_safe_header() {
        assert_eq!(encode_subject("disk full\r\nBcc: x@y"), "disk full  Bcc: x@y");
        let encoded = encode_subject("Plattenplatz: /tmp ist voll — überall, wirklich überall auf batch07");
        assert!(encoded.starts_with("=?UTF-8?B?"), "{encoded}");
        assert!(encoded.split("\r\n ").all(|word| word.len() <= 75), "{encoded}");
    }

    #[test]
    fn messages_are_seven_bit_or_base64() {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let id = DeliveryId::new();
        let ascii = message(&config("x:25".to_owned()), &id, "[drover] firing: tmp-full", "line\n.dot\n", now);
        assert!(ascii.contains("Content-Transfer-Encoding: 7bit\r\n"), "{ascii}");
        assert!(ascii.contains(&format!("Message-ID: <{id}@drover>\r\n")), "{ascii}");
        assert!(ascii.ends_with("\r\n\r\nline\r\n.dot\r\n\r\n"), "{ascii:?}");
        let utf8 = message(&config("x:25".to_owned()), &id, "s", "grüße", now);
        assert!(utf8.contains("Content-Transfer-Encoding: base64\r\n"), "{utf8}");
        assert!(utf8.ends_with(&format!("\r\n\r\n{}\r\n", BASE64.encode("grüße"))), "{utf8}");
    }

    #[test]
    fn addresses_are_checked() {
        assert!(check_address("ops@example.org").is_ok());
        assert!(check_address("ops@example.org>\r\nRCPT TO:<x@y").unwrap_err().permanent);
        assert!(check_address("nobody").is_err());
    }

    /// A scripted relay: answers each command with the next reply and
    /// records what it was sent.
    async fn scripted_relay(replies: Vec<&'static str>) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let handle = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut reader = BufReader::new(read);
            let mut transcript = String::new();
            let mut replies = replies.into_iter();
            write.write_all(replies.next().unwrap().as_bytes()).await.unwrap();
            let mut in_data = false;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).await.unwrap() == 0 {
                    break;
                }
                transcript.push_str(&line);
                if in_data {
                    if line == ".\r\n" {
                        in_data = false;
                    } else {
                        continue;
                    }
                } else if line == "DATA\r\n" {
                    in_data = true;
                }
                let Some(reply) = replies.next() else { break };
                write.write_all(reply.as_bytes()).await.unwrap();
            }
            transcript
        });
        (address, handle)
    }

    #[tokio::test]
    async fn authenticates_and_sends() {
        let (address, relay) = scripted_relay(vec![
            "220 relay ready\r\n",
            "250-relay\r\n250-8BITMIME\r\n250 AUTH LOGIN PLAIN\r\n",
            "235 ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go on\r\n",
            "250 queued\r\n",
            "221 bye\r\n",
        ])
        .await;
        let mut email = config(address);
        email.auth = Some(SmtpAuth { username: "drover".to_owned(), password: "secret".to_owned() });
        deliver(&email, &DeliveryId::new(), &tmp_full()).await.unwrap();
        let transcript = relay.await.unwrap();
        assert!(transcript.starts_with("EHLO [127.0.0.1]\r\n"), "{transcript}");
        assert!(transcript.contains(&format!("AUTH PLAIN {}\r\n", BASE64.encode("\0drover\0secret"))));
        assert!(transcript.contains(
            "MAIL FROM:<drover@example.org>\r\nRCPT TO:<ops@example.org>\r\nRCPT TO:<oncall@example.org>\r\nDATA\r\n"
        ));
        assert!(transcript.contains("Subject: [drover] firing: tmp-full\r\n"), "{transcript}");
        assert!(transcript.contains("Runbook: https://ops.example.org/runbooks/tmp-full\r\n"), "{transcript}");
        assert!(transcript.ends_with(".\r\nQUIT\r\n"), "{transcript}");
    }

    #[tokio::test]
    async fn rejected_recipients_stop_before_data() {
        let (address, relay) = scripted_relay(vec![
            "220 relay ready\r\n",
            "250 relay\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "550 5.1.1 no such user\r\n",
        ])
        .await;
        let error = deliver(&config(address), &DeliveryId::new(), &tmp_full()).await.unwrap_err();
        assert!(error.permanent);
        assert!(
            error.message.contains("RCPT TO:<oncall@example.org> answered 550 5.1.1 no such user"),
            "{}",
            error.message
        );
        assert!(!relay.await.unwrap().contains("DATA"));
    }

    #[tokio::test]
    async fn transient_replies_are_retried_and_helo_is_the_fallback() {
        let (address, _relay) = scripted_relay(vec![
            "220 old relay\r\n",
            "502 what?\r\n",
            "250 hello\r\n",
            "451 4.7.1 greylisted, try later\r\n",
        ])
        .await;
        let error = deliver(&config(address), &DeliveryId::new(), &tmp_full()).await.unwrap_err();
        assert!(!error.permanent, "{error:?}");
        assert!(error.message.contains("451 4.7.1 greylisted"), "{}", error.message);
    }
}
