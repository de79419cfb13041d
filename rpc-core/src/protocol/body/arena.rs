//! The buffer bodies are encoded into: one per thread, handed out in slices.
//!
//! Every call encodes a body (the client its arguments, the server its reply) that lives only
//! until the call's frame is written or the call ends. Encoding each into a fresh buffer cost
//! an allocation, a `realloc` as it grew, and a free per call on both sides. Here each body is
//! split off the end of a per-thread chunk, so it shares that chunk's allocation; once every
//! body of a chunk is dropped, the chunk is reused in place.
//!
//! A body kept alive keeps its whole chunk alive, which is why chunks are small
//! ([`CHUNK`]); a body larger than the room left gets a chunk of its own size.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

/// Bytes per chunk.
const CHUNK: usize = 16 * 1024;
/// Below this much room left, the next body starts a fresh chunk (or reuses the old one if
/// every body cut from it is gone).
const MIN_ROOM: usize = 1024;

thread_local! {
    static ARENA: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Runs `encode` on this thread's chunk and returns what it appended as its own `Bytes`.
///
/// An encode nested inside another on the same thread (a `Serialize` impl that encodes a
/// body itself) gets a buffer of its own.
pub(super) fn encode_in_arena<E>(
    encode: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<Bytes, E> {
    let mut encode = Some(encode);
    let in_arena = ARENA.try_with(|arena| {
        let mut buf = arena.try_borrow_mut().ok()?;
        if buf.capacity() < MIN_ROOM {
            buf.reserve(CHUNK);
        }
        let encode = encode.take()?;
        let result = encode(&mut buf);
        // Whatever was appended leaves the chunk, also on failure.
        let encoded = buf.split().freeze();
        Some(result.map(|()| encoded))
    });
    match (in_arena, encode) {
        (Ok(Some(result)), _) => result,
        (_, Some(encode)) => {
            let mut own = BytesMut::with_capacity(128);
            encode(&mut own).map(|()| own.freeze())
        }
        // Unreachable: `encode` is taken only on the path that returns its result.
        (_, None) => unreachable!("the arena took the encoder and returned nothing"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(bytes: &[u8]) -> Bytes {
        encode_in_arena(|buf| {
            buf.extend_from_slice(bytes);
            Ok::<(), ()>(())
        })
        .unwrap()
    }

    /// Bodies cut from one chunk share its allocation, keep their own bytes, and a chunk
    /// whose bodies are all gone is used again rather than a new one allocated.
    #[test]
    fn bodies_share_a_chunk_and_a_freed_chunk_is_reused() {
        let first = write(b"first");
        let second = write(b"second");
        assert_eq!(&first[..], b"first");
        assert_eq!(&second[..], b"second");
        assert_eq!(
            first.as_ptr() as usize + first.len(),
            second.as_ptr() as usize,
            "the second body follows the first in the same chunk"
        );
        let start = first.as_ptr();
        drop((first, second));
        // Fill the chunk until a fresh start is needed; with every body gone, the same
        // allocation comes back.
        let mut reused = false;
        for _ in 0..(2 * CHUNK / 512) {
            let body = write(&[7u8; 512]);
            if body.as_ptr() == start {
                reused = true;
                break;
            }
        }
        assert!(
            reused,
            "the chunk was not reused once its bodies were dropped"
        );
    }

    #[test]
    fn a_nested_encode_gets_its_own_buffer() {
        let outer = encode_in_arena(|buf| {
            buf.extend_from_slice(b"outer:");
            let inner = write(b"inner");
            buf.extend_from_slice(&inner);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(&outer[..], b"outer:inner");
    }

    #[test]
    fn a_failed_encode_leaves_nothing_behind() {
        let failed = encode_in_arena(|buf| {
            buf.extend_from_slice(b"partial");
            Err::<(), &str>("no")
        });
        assert_eq!(failed, Err("no"));
        assert_eq!(&write(b"next")[..], b"next");
    }
}
