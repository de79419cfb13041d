//! Body codecs: how arguments and return values become bytes.
//!
//! [`Codec`] is the value a caller picks and a frame's codec byte resolves to: the built-ins
//! (bincode 0, JSON 1, postcard 2) as plain variants, matched and monomorphized on the hot
//! path, and [`Codec::Custom`] for a user's [`BodyCodec`], reached through `erased-serde`.
//! [`Codecs`] is the set one side knows, keyed by id.

mod arena;
mod bincode;
mod custom;
mod postcard;
mod set;

use std::fmt;
use std::hash::{Hash, Hasher};

use bytes::{BufMut, Bytes, BytesMut};
use serde::{de::DeserializeOwned, Serialize};

pub use custom::{BodyCodec, BoxError, DecodeTarget};
pub use set::{Codecs, DuplicateCodec};

/// The serialization of a frame's body (the `codec` byte). `Copy`: a user codec is held as a
/// `&'static`, so choosing and passing a codec never touches a reference count.
///
/// ```
/// use rpc_core::Codec;
///
/// let args = ("bob".to_string(), 42u32);
/// for codec in Codec::BUILT_IN {
///     let bytes = codec.encode(&args).unwrap();
///     let back: (String, u32) = codec.decode(&bytes).unwrap();
///     assert_eq!(back, args);
/// }
/// assert_eq!(Codec::Json.encode(&("bob",)).unwrap().as_ref(), br#"["bob"]"#);
/// assert_eq!(Codec::Postcard.encode(&("bob",)).unwrap().as_ref(), b"\x03bob");
/// ```
#[derive(Clone, Copy, Default)]
#[non_exhaustive]
pub enum Codec {
    /// bincode 2 with `bincode::config::standard()`, id 0.
    #[default]
    Bincode,
    /// JSON via serde_json, id 1.
    Json,
    /// postcard 1, id 2.
    Postcard,
    /// A codec of your own, registered in the [`Codecs`] of both sides.
    Custom(&'static dyn BodyCodec),
}

/// A value that could not be encoded or decoded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{codec} {op} failed: {message}")]
pub struct CodecError {
    /// The codec in use.
    pub codec: &'static str,
    /// `"encode"` or `"decode"`.
    pub op: &'static str,
    /// What the serializer said.
    pub message: String,
}

/// Why a binary body did not decode, before it becomes a message.
pub(crate) enum Failure {
    /// A length (or the value itself) needs more bytes than the body holds.
    Overrun,
    /// The value ended with this many bytes left over.
    Trailing(usize),
    /// Anything else the decoder said.
    Other(String),
}

impl Codec {
    /// Every built-in codec, by id.
    pub const BUILT_IN: [Codec; 3] = [Codec::Bincode, Codec::Json, Codec::Postcard];

    /// The built-in codec with this codec byte; `None` for any other (a user codec's id is
    /// resolved by [`Codecs::get`]).
    #[inline]
    pub fn from_u8(code: u8) -> Option<Codec> {
        match code {
            0 => Some(Codec::Bincode),
            1 => Some(Codec::Json),
            2 => Some(Codec::Postcard),
            _ => None,
        }
    }

    /// The built-in codec with this name: `bincode`, `json` or `postcard`.
    pub fn from_name(name: &str) -> Option<Codec> {
        Codec::BUILT_IN
            .into_iter()
            .find(|codec| codec.name() == name)
    }

    /// The codec byte on the wire.
    #[inline]
    pub fn id(self) -> u8 {
        match self {
            Codec::Bincode => 0,
            Codec::Json => 1,
            Codec::Postcard => 2,
            Codec::Custom(codec) => codec.id(),
        }
    }

    /// The codec's name, for messages and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Bincode => "bincode",
            Codec::Json => "json",
            Codec::Postcard => "postcard",
            Codec::Custom(codec) => codec.name(),
        }
    }

    /// Encodes `value` into a new buffer.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Bytes, CodecError> {
        arena::encode_in_arena(|buf| self.encode_into(value, buf))
    }

    /// Appends the encoding of `value` to `dst`.
    pub fn encode_into<T: Serialize + ?Sized>(
        self,
        value: &T,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError> {
        let result = match self {
            Codec::Bincode => bincode::encode(value, dst).map_err(|e| e.to_string()),
            Codec::Json => serde_json::to_writer(dst.writer(), value).map_err(|e| e.to_string()),
            Codec::Postcard => postcard::encode(value, dst).map_err(|e| e.to_string()),
            Codec::Custom(codec) => custom::encode(codec, value, dst).map_err(|e| e.to_string()),
        };
        result.map_err(|message| self.error("encode", message))
    }

    /// Decodes a whole body; trailing bytes are an error.
    ///
    /// What a decode may allocate is bounded by the body's own length, whatever the body
    /// claims: a length prefix that asks for more bytes than the body holds fails before
    /// anything is allocated for it (bincode, postcard; the error says the body "claims
    /// more" than it holds), and JSON builds strings and sequences only from bytes that are
    /// really there (serde_json reserves nothing up front). A [`BodyCodec`] promises the same.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, CodecError> {
        let failure = match self {
            Codec::Bincode => bincode::decode(body),
            Codec::Postcard => postcard::decode(body),
            Codec::Json => serde_json::from_slice(body).map_err(|e| Failure::Other(e.to_string())),
            Codec::Custom(codec) => {
                custom::decode(codec, body).map_err(|e| Failure::Other(e.to_string()))
            }
        };
        failure.map_err(|failure| {
            let message = match failure {
                Failure::Overrun => format!(
                    "a length in the body claims more than its {} bytes can hold",
                    body.len()
                ),
                Failure::Trailing(left) => format!("{left} trailing bytes after the value"),
                Failure::Other(message) => message,
            };
            self.error("decode", message)
        })
    }

    fn error(self, op: &'static str, message: String) -> CodecError {
        CodecError {
            codec: self.name(),
            op,
            message,
        }
    }
}

impl From<Codec> for u8 {
    fn from(codec: Codec) -> u8 {
        codec.id()
    }
}

/// Codecs are equal when their ids are: the id is what the wire carries.
impl PartialEq for Codec {
    fn eq(&self, other: &Codec) -> bool {
        self.id() == other.id()
    }
}

impl Eq for Codec {}

impl Hash for Codec {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Codec::Bincode => f.write_str("Bincode"),
            Codec::Json => f.write_str("Json"),
            Codec::Postcard => f.write_str("Postcard"),
            Codec::Custom(codec) => write!(f, "Custom({:?}, id {})", codec.name(), codec.id()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A varint length of `n` as bincode's standard config writes it.
    fn varint(n: u64) -> Vec<u8> {
        let mut out = vec![253];
        out.extend_from_slice(&n.to_le_bytes());
        out
    }

    #[test]
    fn length_bombs_fail_without_allocating() {
        for claimed in [1u64 << 34, 1 << 50, 1 << 60, u64::MAX] {
            let body = varint(claimed);
            let err = Codec::Bincode.decode::<(String,)>(&body).unwrap_err();
            assert!(err.message.contains("claims more"), "{err}");
            let err = Codec::Bincode
                .decode::<(serde_bytes::ByteBuf,)>(&body)
                .unwrap_err();
            assert!(err.message.contains("claims more"), "{err}");
            assert!(Codec::Bincode.decode::<(Vec<u64>,)>(&body).is_err());
        }
    }

    #[test]
    fn dense_valid_bodies_still_decode() {
        let text = "x".repeat(300);
        let value = (
            text,
            vec![7u8; 40],
            vec![0u128; 50],
            vec![String::new(); 50],
        );
        for codec in [Codec::Bincode, Codec::Postcard] {
            let body = codec.encode(&value).unwrap();
            let back: (String, Vec<u8>, Vec<u128>, Vec<String>) = codec.decode(&body).unwrap();
            assert_eq!(back, value);
            let body = codec.encode(&(String::new(),)).unwrap();
            let back: (String,) = codec.decode(&body).unwrap();
            assert_eq!(back.0, "");
            let mut longer = body.to_vec();
            longer.push(0);
            let err = codec.decode::<(String,)>(&longer).unwrap_err();
            assert!(err.message.contains("1 trailing bytes"), "{err}");
        }
    }
}
