//! Body codecs: how arguments and return values become bytes.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{de::DeserializeOwned, Serialize};

/// The serialization of a frame's body (the `codec` byte).
///
/// ```
/// use rpc_core::Codec;
///
/// let args = ("bob".to_string(), 42u32);
/// for codec in [Codec::Bincode, Codec::Json] {
///     let bytes = codec.encode(&args).unwrap();
///     let back: (String, u32) = codec.decode(&bytes).unwrap();
///     assert_eq!(back, args);
/// }
/// assert_eq!(Codec::Json.encode(&("bob",)).unwrap().as_ref(), br#"["bob"]"#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Codec {
    /// bincode 2 with `bincode::config::standard()`.
    #[default]
    Bincode = 0,
    /// JSON via serde_json.
    Json = 1,
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

impl Codec {
    /// Parses a codec byte; `None` for a code the protocol does not define.
    pub fn from_u8(code: u8) -> Option<Codec> {
        match code {
            0 => Some(Codec::Bincode),
            1 => Some(Codec::Json),
            _ => None,
        }
    }

    /// The codec byte on the wire.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The codec's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Bincode => "bincode",
            Codec::Json => "json",
        }
    }

    /// Encodes `value` into a new buffer.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Bytes, CodecError> {
        let mut out = BytesMut::with_capacity(128);
        self.encode_into(value, &mut out)?;
        Ok(out.freeze())
    }

    /// Appends the encoding of `value` to `dst`.
    pub fn encode_into<T: Serialize + ?Sized>(
        self,
        value: &T,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError> {
        match self {
            Codec::Bincode => bincode::serde::encode_into_writer(
                value,
                BytesWriter(dst),
                bincode::config::standard(),
            )
            .map_err(|e| self.error("encode", e)),
            Codec::Json => {
                serde_json::to_writer(dst.writer(), value).map_err(|e| self.error("encode", e))
            }
        }
    }

    /// Decodes a whole body; trailing bytes are an error.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, CodecError> {
        match self {
            Codec::Bincode => {
                let (value, used) =
                    bincode::serde::decode_from_slice(body, bincode::config::standard())
                        .map_err(|e| self.error("decode", e))?;
                if used != body.len() {
                    return Err(self.error(
                        "decode",
                        format!("{} trailing bytes after the value", body.len() - used),
                    ));
                }
                Ok(value)
            }
            Codec::Json => serde_json::from_slice(body).map_err(|e| self.error("decode", e)),
        }
    }

    fn error(self, op: &'static str, e: impl std::fmt::Display) -> CodecError {
        CodecError {
            codec: self.name(),
            op,
            message: e.to_string(),
        }
    }
}

/// Lets bincode append straight to a `BytesMut`: one `extend_from_slice` per write, where a
/// `std::io::Write` adapter costs a call chain per byte.
struct BytesWriter<'a>(&'a mut BytesMut);

impl bincode::enc::write::Writer for BytesWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}
