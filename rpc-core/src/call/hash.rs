//! A stable 64-bit hash: the same bytes hash alike in every process, build and platform
//! word size, so every consumer places ring points and routes keys the same way.

use std::hash::Hasher;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over the written bytes, finished with the murmur3 64-bit mixer for avalanche.
///
/// Unlike `std`'s `DefaultHasher`, its output is fixed: consistent-hash rings and
/// [`CallOptions::with_hash_key`](crate::CallOptions::with_hash_key) use it so that separate
/// consumer processes agree on where a key goes.
#[derive(Debug, Clone, Copy)]
pub struct StableHasher {
    state: u64,
}

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher { state: FNV_OFFSET }
    }
}

impl Hasher for StableHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.state ^= u64::from(*byte);
            self.state = self.state.wrapping_mul(FNV_PRIME);
        }
    }

    fn finish(&self) -> u64 {
        mix64(self.state)
    }
}

/// The murmur3 finalizer: spreads every input bit over every output bit.
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// The stable hash of a byte string.
#[cfg(test)]
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hasher = StableHasher::default();
    hasher.write(bytes);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_deterministic_and_spreads() {
        assert_eq!(hash_bytes(b"abc"), hash_bytes(b"abc"));
        assert_ne!(hash_bytes(b"key-1"), hash_bytes(b"key-2"));
        // Pinned so a change to the function (which would reshuffle every ring) is noticed.
        assert_eq!(hash_bytes(b""), mix64(FNV_OFFSET));
    }
}
