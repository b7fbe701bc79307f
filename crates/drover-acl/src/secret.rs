//! Secrets, accessors and the text of a join token.
//!
//! A secret is 32 random bytes written as 64 lowercase hex characters. It
//! is shown once, when its token is created, and stored only as its
//! SHA-256 ([`hash_secret`]); a presented secret is checked by hashing it
//! and comparing the hashes in constant time ([`secret_matches`]). An
//! accessor is the public id of a token, a random UUID-shaped text.
//!
//! A join token travels as one line, `drover1.<CA hash>.<secret>`: the
//! SHA-256 of the cluster CA certificate (so that a joining machine can
//! check whom it talks to before trusting it) and the secret, each 64 hex
//! characters. `drover1` is the format's version.
//!
//! The randomness comes from `rand`'s thread-local generator, a
//! cryptographically secure one seeded from the operating system. Error
//! messages never repeat a secret, nor any part of one.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How a join token's text starts: the format's name and version.
pub const JOIN_TOKEN_PREFIX: &str = "drover1.";

/// The length of a secret, and of a SHA-256, in hex characters.
pub const SECRET_HEX_CHARS: usize = 64;

/// How many random bytes a secret has.
const SECRET_BYTES: usize = SECRET_HEX_CHARS / 2;

/// A fresh secret: 32 random bytes, 64 lowercase hex characters.
pub fn new_secret() -> String {
    let mut bytes = [0_u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

/// A fresh accessor: 16 random bytes in the shape of a version 4 UUID,
/// `8-4-4-4-12` lowercase hex characters.
pub fn new_accessor() -> String {
    let mut bytes = [0_u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    // The version (4, random) and variant (RFC 4122) bits of a UUID.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let digits = hex(&bytes);
    let mut accessor = String::with_capacity(36);
    for (index, character) in digits.chars().enumerate() {
        if matches!(index, 8 | 12 | 16 | 20) {
            accessor.push('-');
        }
        accessor.push(character);
    }
    accessor
}

/// The SHA-256 of `bytes`, 64 lowercase hex characters (also the form of
/// the CA hash in a join token).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The stored form of a secret: its SHA-256, lowercase hex.
pub fn hash_secret(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

/// Whether `secret` is the one whose hash is `hash_hex` (as
/// [`hash_secret`] wrote it; hex in either case). The hashes are compared
/// in constant time. A `hash_hex` that is not a SHA-256 in hex matches no
/// secret.
pub fn secret_matches(secret: &str, hash_hex: &str) -> bool {
    let Some(expected) = decode_hex(hash_hex) else {
        return false;
    };
    let actual = Sha256::digest(secret.as_bytes());
    actual.as_slice().ct_eq(&expected).into()
}

/// Checks that a presented ACL token secret has the shape of one (64
/// lowercase hex characters), so that garbage in a header is refused with
/// a clear message before any lookup.
///
/// # Errors
/// What is wrong with the shape, without repeating the secret.
pub fn check_secret_shape(secret: &str) -> Result<(), String> {
    if secret.is_empty() {
        return Err(
            "the ACL token secret is empty: give the 64-character secret shown when the token was created".to_owned()
        );
    }
    if secret.trim().starts_with(JOIN_TOKEN_PREFIX) {
        return Err(format!(
            "this is a join token (it starts with {JOIN_TOKEN_PREFIX}), not an ACL token secret: join tokens only enrol machines; give an ACL token's 64-character secret"
        ));
    }
    if secret.trim() != secret {
        return Err("the ACL token secret has spaces or a line break around it: remove them".to_owned());
    }
    check_hex("the ACL token secret", secret)
}

/// The text of a join token, `drover1.<CA hash>.<secret>`. `Display`
/// writes it (secret included, as it is meant to be handed over); `Debug`
/// hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinTokenText {
    /// SHA-256 of the cluster CA certificate (DER), 64 lowercase hex
    /// characters.
    pub ca_sha256: String,
    /// The join token's secret, 64 lowercase hex characters.
    pub secret: String,
}

impl JoinTokenText {
    /// Reads a join token as a person pasted it (whitespace around it is
    /// ignored).
    ///
    /// # Errors
    /// What is wrong, without repeating the secret: not a join token, a
    /// format this version does not read, a part missing, or a part that is
    /// not 64 lowercase hex characters (cut, or changed, when copied).
    pub fn parse(text: &str) -> Result<JoinTokenText, String> {
        const SHAPE: &str = "a join token is drover1.<CA hash>.<secret>, with 64 hex characters in each part";
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(format!("the join token is empty: {SHAPE}"));
        }
        let Some(rest) = trimmed.strip_prefix(JOIN_TOKEN_PREFIX) else {
            return Err(not_a_join_token(trimmed));
        };
        let parts: Vec<&str> = rest.split('.').collect();
        let [ca_sha256, secret] = parts.as_slice() else {
            return Err(if parts.len() < 2 {
                format!("the join token is cut short: its secret is missing ({SHAPE})")
            } else {
                format!("the join token has {} parts after {JOIN_TOKEN_PREFIX}, not 2: {SHAPE}", parts.len())
            });
        };
        check_hex("the CA hash of the join token", ca_sha256)?;
        check_hex("the secret of the join token", secret)?;
        Ok(JoinTokenText { ca_sha256: (*ca_sha256).to_owned(), secret: (*secret).to_owned() })
    }
}

/// Why `text`, which does not start with [`JOIN_TOKEN_PREFIX`], is not a
/// join token, naming what it looks like instead.
fn not_a_join_token(text: &str) -> String {
    let first_part = text.split('.').next().unwrap_or_default();
    let version = first_part.strip_prefix("drover").filter(|version| {
        !version.is_empty() && version.chars().all(|character| character.is_ascii_digit()) && version != &"1"
    });
    if let Some(version) = version
        && text.len() > first_part.len()
    {
        return format!(
            "this join token is of the format drover{version}, which this version of drover does not read (it reads drover1): use a drover that reads it, or create a join token with this one"
        );
    }
    if check_hex("", text).is_ok() {
        return format!(
            "this looks like an ACL token secret, not a join token: a join token starts with \"{JOIN_TOKEN_PREFIX}\""
        );
    }
    format!("not a drover join token: it must start with \"{JOIN_TOKEN_PREFIX}\"")
}

impl fmt::Display for JoinTokenText {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{JOIN_TOKEN_PREFIX}{}.{}", self.ca_sha256, self.secret)
    }
}

impl fmt::Debug for JoinTokenText {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("JoinTokenText")
            .field("ca_sha256", &self.ca_sha256)
            .field("secret", &"<hidden>")
            .finish()
    }
}

impl FromStr for JoinTokenText {
    type Err = String;

    fn from_str(text: &str) -> Result<JoinTokenText, String> {
        JoinTokenText::parse(text)
    }
}

/// Checks that `text` (named `what` in messages) is 64 lowercase hex
/// characters; the message never repeats `text`.
fn check_hex(what: &str, text: &str) -> Result<(), String> {
    let length = text.chars().count();
    if let Some(position) = text.chars().position(char::is_whitespace) {
        return Err(format!(
            "{what} holds a space or a line break (at character {}): join the lines it was split into",
            position + 1
        ));
    }
    if length != SECRET_HEX_CHARS {
        let hint = if length < SECRET_HEX_CHARS { ": it may have been cut when copied" } else { "" };
        return Err(format!("{what} must be {SECRET_HEX_CHARS} hex characters, not {length}{hint}"));
    }
    if let Some(position) = text.chars().position(|character| !matches!(character, '0'..='9' | 'a'..='f')) {
        return Err(format!(
            "{what} must be {SECRET_HEX_CHARS} lowercase hex characters (0-9, a-f), but character {} is not one",
            position + 1
        ));
    }
    Ok(())
}

use drover_types::text::hex;

/// The 32 bytes of a SHA-256 in hex (either case), or `None`.
fn decode_hex(text: &str) -> Option<[u8; SECRET_BYTES]> {
    let digits = text.as_bytes();
    if digits.len() != SECRET_HEX_CHARS {
        return None;
    }
    let mut bytes = [0_u8; SECRET_BYTES];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        *byte = u8::try_from(high * 16 + low).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const CA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const SECRET: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    #[test]
    fn secrets_are_64_lowercase_hex_characters_and_differ() {
        let first = new_secret();
        assert_eq!(first.len(), 64);
        assert_eq!(check_secret_shape(&first), Ok(()));
        assert_ne!(first, new_secret());
    }

    #[test]
    fn accessors_are_shaped_like_random_uuids() {
        let accessor = new_accessor();
        let groups: Vec<usize> = accessor.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(accessor.chars().nth(14), Some('4'));
        assert!(matches!(accessor.chars().nth(19), Some('8' | '9' | 'a' | 'b')));
        assert!(accessor.chars().all(|character| matches!(character, '0'..='9' | 'a'..='f' | '-')));
        assert_ne!(accessor, new_accessor());
    }

    #[test]
    fn hashes_are_sha256_and_match_only_their_secret() {
        // SHA-256 of "abc", from FIPS 180-2.
        assert_eq!(hash_secret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let secret = new_secret();
        let hash = hash_secret(&secret);
        assert!(secret_matches(&secret, &hash));
        assert!(secret_matches(&secret, &hash.to_uppercase()));
        assert!(!secret_matches(&new_secret(), &hash));
        assert!(!secret_matches(&secret, &hash[..63]));
        assert!(!secret_matches(&secret, ""));
        assert!(!secret_matches(&secret, &format!("{}zz", &hash[..62])));
        assert!(!secret_matches(&secret, &"é".repeat(32)));
    }

    #[test]
    fn secret_shapes_are_explained_without_the_secret() {
        assert_eq!(
            check_secret_shape("").unwrap_err(),
            "the ACL token secret is empty: give the 64-character secret shown when the token was created"
        );
        assert_eq!(
            check_secret_shape("abc123").unwrap_err(),
            "the ACL token secret must be 64 hex characters, not 6: it may have been cut when copied"
        );
        assert_eq!(
            check_secret_shape(&format!("{SECRET}\n")).unwrap_err(),
            "the ACL token secret has spaces or a line break around it: remove them"
        );
        let uppercase = SECRET.to_uppercase();
        let error = check_secret_shape(&uppercase).unwrap_err();
        assert_eq!(
            error,
            "the ACL token secret must be 64 lowercase hex characters (0-9, a-f), but character 1 is not one"
        );
        assert_eq!(
            check_secret_shape(&format!("drover1.{CA}.{SECRET}")).unwrap_err(),
            "this is a join token (it starts with drover1.), not an ACL token secret: join tokens only enrol machines; give an ACL token's 64-character secret"
        );
    }

    #[test]
    fn join_tokens_print_and_read_back() {
        let token = JoinTokenText { ca_sha256: CA.to_owned(), secret: SECRET.to_owned() };
        let text = token.to_string();
        assert_eq!(text, format!("drover1.{CA}.{SECRET}"));
        assert_eq!(JoinTokenText::parse(&text), Ok(token.clone()));
        assert_eq!(JoinTokenText::parse(&format!("  {text}\n")), Ok(token.clone()));
        assert_eq!(text.parse::<JoinTokenText>(), Ok(token.clone()));
        assert!(!format!("{token:?}").contains(SECRET));
    }

    #[test]
    fn broken_join_tokens_are_explained_without_the_secret() {
        let cases = [
            ("", "the join token is empty: a join token is drover1.<CA hash>.<secret>, with 64 hex characters in each part".to_owned()),
            (SECRET, "this looks like an ACL token secret, not a join token: a join token starts with \"drover1.\"".to_owned()),
            ("hello", "not a drover join token: it must start with \"drover1.\"".to_owned()),
            (&format!("drover2.{CA}.{SECRET}"), "this join token is of the format drover2, which this version of drover does not read (it reads drover1): use a drover that reads it, or create a join token with this one".to_owned()),
            (&format!("drover1.{CA}"), "the join token is cut short: its secret is missing (a join token is drover1.<CA hash>.<secret>, with 64 hex characters in each part)".to_owned()),
            (&format!("drover1.{CA}.{SECRET}.x"), "the join token has 3 parts after drover1., not 2: a join token is drover1.<CA hash>.<secret>, with 64 hex characters in each part".to_owned()),
            (&format!("drover1.{}.{SECRET}", &CA[..63]), "the CA hash of the join token must be 64 hex characters, not 63: it may have been cut when copied".to_owned()),
            (&format!("drover1.{CA}.{}", &SECRET[..40]), "the secret of the join token must be 64 hex characters, not 40: it may have been cut when copied".to_owned()),
            (&format!("drover1.{CA}.{SECRET}0"), "the secret of the join token must be 64 hex characters, not 65".to_owned()),
            (&format!("drover1.{CA}.{}g", &SECRET[..63]), "the secret of the join token must be 64 lowercase hex characters (0-9, a-f), but character 64 is not one".to_owned()),
            (&format!("drover1.{CA}.{}\n{}", &SECRET[..32], &SECRET[32..]), "the secret of the join token holds a space or a line break (at character 33): join the lines it was split into".to_owned()),
            (&format!("drover1.{}.{SECRET}", CA.to_uppercase()), "the CA hash of the join token must be 64 lowercase hex characters (0-9, a-f), but character 11 is not one".to_owned()),
        ];
        for (text, expected) in cases {
            let error = JoinTokenText::parse(text).unwrap_err();
            assert_eq!(error, expected, "{text:?}");
            assert!(!error.contains(&SECRET[..16]), "{error}");
        }
    }
}
