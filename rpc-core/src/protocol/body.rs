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
    ///
    /// What a decode may allocate is bounded by the body's own length, whatever the body
    /// claims: a length prefix that asks for more bytes than the body holds fails before
    /// anything is allocated for it (bincode), and JSON builds strings and sequences only
    /// from bytes that are really there (serde_json reserves nothing up front).
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, CodecError> {
        match self {
            Codec::Bincode => {
                let (value, left) = bounded_bincode(body).map_err(|e| match e {
                    bincode::error::DecodeError::LimitExceeded => self.error(
                        "decode",
                        format!(
                            "a length in the body claims more than its {} bytes can hold",
                            body.len()
                        ),
                    ),
                    e => self.error("decode", e),
                })?;
                if left != 0 {
                    return Err(
                        self.error("decode", format!("{left} trailing bytes after the value"))
                    );
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

/// How many bytes bincode may claim per byte of body. bincode claims the in-memory size of
/// each primitive it decodes (16 for a `u128` that took one varint byte, 8 for a length
/// prefix of one byte) and the length of each string or byte buffer it allocates, so no valid
/// body claims more than 16 bytes per byte, and no claim can run past that.
const CLAIM_PER_BODY_BYTE: usize = 16;

/// Decodes `body` with bincode's standard configuration, letting strings, byte buffers and
/// primitives claim at most [`CLAIM_PER_BODY_BYTE`] bytes per body byte in total; returns
/// the value and how many bytes were left over.
///
/// bincode checks claims against a compile-time limit only, so the limit is the largest
/// there is and all but the body's allowance is claimed before decoding starts.
fn bounded_bincode<T: DeserializeOwned>(
    body: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    use bincode::de::{Decode, Decoder, DecoderImpl};

    let allowance = body.len().saturating_mul(CLAIM_PER_BODY_BYTE);
    let config = bincode::config::standard().with_limit::<{ usize::MAX }>();
    let mut decoder = DecoderImpl::new(SliceReader(body), config, ());
    decoder.claim_bytes_read(usize::MAX - allowance)?;
    let bincode::serde::Compat(value) = bincode::serde::Compat::<T>::decode(&mut decoder)?;
    Ok((value, decoder.reader().0.len()))
}

/// bincode's own slice reader, but with the unread rest visible, for the trailing-bytes check.
struct SliceReader<'a>(&'a [u8]);

impl bincode::de::read::Reader for SliceReader<'_> {
    fn read(&mut self, bytes: &mut [u8]) -> Result<(), bincode::error::DecodeError> {
        if bytes.len() > self.0.len() {
            return Err(bincode::error::DecodeError::UnexpectedEnd {
                additional: bytes.len() - self.0.len(),
            });
        }
        let (head, rest) = self.0.split_at(bytes.len());
        bytes.copy_from_slice(head);
        self.0 = rest;
        Ok(())
    }

    fn peek_read(&mut self, n: usize) -> Option<&[u8]> {
        self.0.get(..n)
    }

    fn consume(&mut self, n: usize) {
        self.0 = self.0.get(n..).unwrap_or_default();
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
        let body = Codec::Bincode.encode(&value).unwrap();
        let back: (String, Vec<u8>, Vec<u128>, Vec<String>) = Codec::Bincode.decode(&body).unwrap();
        assert_eq!(back, value);
        let body = Codec::Bincode.encode(&(String::new(),)).unwrap();
        let back: (String,) = Codec::Bincode.decode(&body).unwrap();
        assert_eq!(back.0, "");
        let mut longer = body.to_vec();
        longer.push(0);
        let err = Codec::Bincode.decode::<(String,)>(&longer).unwrap_err();
        assert!(err.message.contains("1 trailing bytes"), "{err}");
    }
}
