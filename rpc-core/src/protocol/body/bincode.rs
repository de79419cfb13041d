//! bincode 2 (`bincode::config::standard()`), id 0: encoding straight into a `BytesMut`, and a
//! decode whose claims are bounded by the body's length. A claim past the allowance, or past
//! the end of the body, is reported as [`Failure::Overrun`].

use bytes::BytesMut;
use serde::{de::DeserializeOwned, Serialize};

use super::Failure;

/// Appends bincode's encoding of `value` to `dst`.
pub(super) fn encode<T: Serialize + ?Sized>(
    value: &T,
    dst: &mut BytesMut,
) -> Result<(), bincode::error::EncodeError> {
    bincode::serde::encode_into_writer(value, BytesWriter(dst), bincode::config::standard())
}

/// Decodes a whole body; trailing bytes are an error.
pub(super) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    let (value, left) = bounded(body).map_err(|e| match e {
        bincode::error::DecodeError::LimitExceeded
        | bincode::error::DecodeError::UnexpectedEnd { .. } => Failure::Overrun,
        e => Failure::Other(e.to_string()),
    })?;
    if left != 0 {
        return Err(Failure::Trailing(left));
    }
    Ok(value)
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
fn bounded<T: DeserializeOwned>(body: &[u8]) -> Result<(T, usize), bincode::error::DecodeError> {
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
