//! Binary encoding of everything drover persists or replicates.
//!
//! MessagePack with named fields (`rmp_serde::to_vec_named`): compact, and
//! self-describing so that a field added with `#[serde(default)]` still
//! reads older data. Every persisted blob starts with a one-byte format
//! version so that a future change of encoding can be told apart.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The current encoding version byte.
pub const FORMAT_MSGPACK_V1: u8 = 1;

/// Encodes `value` with a leading format byte.
pub fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut bytes = vec![FORMAT_MSGPACK_V1];
    rmp_serde::encode::write_named(&mut bytes, value).map_err(io::Error::other)?;
    Ok(bytes)
}

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_MSGPACK_V1, payload)) => rmp_serde::from_slice(payload).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "cannot decode stored data ({error}); if it was written by a newer drover, upgrade this server"
                ),
            )
        }),
        Some((version, _)) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("stored data has format version {version}, which this drover does not know; upgrade this server"),
        )),
        None => Err(io::Error::new(io::ErrorKind::InvalidData, "stored data is empty")),
    }
}
