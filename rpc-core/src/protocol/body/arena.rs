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

use std::cell::Cell;

use bytes::{Bytes, BytesMut};

/// Bytes per chunk.
const CHUNK: usize = 16 * 1024;
/// Below this much room left, the next body starts a fresh chunk (or reuses the old one if
/// every body cut from it is gone).
const MIN_ROOM: usize = 1024;

thread_local! {
    static ARENA: Cell<BytesMut> = Cell::new(BytesMut::new());
}

/// Runs `encode` on this thread's chunk and returns what it appended as its own `Bytes`.
///
/// The chunk is taken out of the thread-local while `encode` runs, so an encode nested inside
/// another on the same thread (a `Serialize` impl that encodes a body itself) starts a chunk
/// of its own rather than sharing a borrowed one.
pub(super) fn encode_in_arena<E>(
    encode: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<Bytes, E> {
    let mut buf = ARENA.try_with(Cell::take).unwrap_or_default();
    if buf.capacity() < MIN_ROOM {
        buf.reserve(CHUNK);
    }
    let result = encode(&mut buf);
    // Whatever was appended leaves the chunk, also on failure.
    let encoded = buf.split().freeze();
    // During thread teardown there is no thread-local to return the chunk to; it is dropped.
    let _ = ARENA.try_with(|arena| arena.set(buf));
    result.map(|()| encoded)
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
