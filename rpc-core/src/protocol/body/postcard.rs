//! postcard 1 (id 2): a compact, maintained binary format (LEB128 varints, zig-zag signed
//! integers, no field names), writing straight into a `BytesMut`.
//!
//! Its decode is bounded by the body's length without help: a string or byte buffer's length
//! is checked against the bytes left before anything is allocated for it, and a sequence is
//! preallocated only when its claimed count is no more than the bytes left (postcard's
//! `size_hint`). A claim past the end is reported as [`Failure::Overrun`].

use bytes::BytesMut;
use serde::{de::DeserializeOwned, Serialize};

use super::Failure;

/// Appends postcard's encoding of `value` to `dst`.
pub(super) fn encode<T: Serialize + ?Sized>(
    value: &T,
    dst: &mut BytesMut,
) -> Result<(), postcard::Error> {
    postcard::serialize_with_flavor(value, BytesFlavor(dst))
}

/// Decodes a whole body; trailing bytes are an error.
pub(super) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(Failure::Trailing(rest.len())),
        Err(postcard::Error::DeserializeUnexpectedEnd) => Err(Failure::Overrun),
        Err(e) => Err(Failure::Other(e.to_string())),
    }
}

/// postcard's output as a `BytesMut`: one `extend_from_slice` per write, where postcard's
/// `Extend<u8>` flavor pushes byte by byte.
struct BytesFlavor<'a>(&'a mut BytesMut);

impl postcard::ser_flavors::Flavor for BytesFlavor<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.extend_from_slice(&[data]);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}
