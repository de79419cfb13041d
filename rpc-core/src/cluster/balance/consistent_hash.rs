//! `consistent-hash`: a ring of virtual nodes, routed by the call's hash key.

use std::hash::Hasher;

use super::{LoadBalancer, Pick, Random};
use crate::call::{mix64, StableHasher};
use crate::cluster::endpoint::Members;

/// Sends each hash key to the same endpoint while membership is unchanged; when an instance
/// joins or leaves, only about 1/N of the keys move.
///
/// Every instance gets `virtual_nodes` points on a 64-bit ring, hashed (with a stable hash)
/// on the instance's own `host:port` and the point's number, so every consumer builds the
/// same ring. A key goes to the first point at or after its hash; skipped endpoints (failed
/// or ejected) pass the key on clockwise. The ring is built once per membership snapshot.
/// Calls without a key ([`CallOptions::with_hash_key`](crate::CallOptions::with_hash_key))
/// are spread at random.
#[derive(Debug, Clone, Copy)]
pub struct ConsistentHash {
    virtual_nodes: usize,
}

/// Points per instance unless configured: enough for an even spread over a few instances.
pub const DEFAULT_VIRTUAL_NODES: usize = 160;

impl Default for ConsistentHash {
    fn default() -> Self {
        ConsistentHash {
            virtual_nodes: DEFAULT_VIRTUAL_NODES,
        }
    }
}

impl ConsistentHash {
    /// A ring with `virtual_nodes` points per instance (at least 1; default 160).
    pub fn new(virtual_nodes: usize) -> ConsistentHash {
        ConsistentHash {
            virtual_nodes: virtual_nodes.max(1),
        }
    }

    /// Points per instance.
    pub fn virtual_nodes(&self) -> usize {
        self.virtual_nodes
    }
}

/// Ring points sorted by position: `(position, endpoint index)`.
struct Ring(Vec<(u64, u32)>);

impl Ring {
    fn build(members: &Members, virtual_nodes: usize) -> Ring {
        let mut points = Vec::with_capacity(members.len() * virtual_nodes);
        for (index, endpoint) in members.endpoints().iter().enumerate() {
            let name = match members.instance(endpoint) {
                Some(instance) => instance.address(),
                None => endpoint.addr().to_string(),
            };
            for node in 0..virtual_nodes {
                let mut hasher = StableHasher::default();
                hasher.write(name.as_bytes());
                hasher.write(b"#");
                hasher.write(&(node as u64).to_be_bytes());
                points.push((hasher.finish(), index as u32));
            }
        }
        points.sort_unstable();
        Ring(points)
    }
}

impl LoadBalancer for ConsistentHash {
    fn name(&self) -> &'static str {
        "consistent-hash"
    }

    fn pick(&self, pick: &Pick<'_>) -> Option<usize> {
        let Some(key) = pick.hash_key() else {
            return Random.pick(pick);
        };
        if pick.endpoints().is_empty() {
            return None;
        }
        let target = mix64(key);
        pick.members().with_state(
            |members| Ring::build(members, self.virtual_nodes),
            |ring| {
                let points = &ring.0;
                let start = points.partition_point(|&(position, _)| position < target);
                (0..points.len())
                    .map(|offset| points[(start + offset) % points.len()].1 as usize)
                    .find(|&index| pick.is_allowed(index))
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::cluster::endpoint::testing::members;

    fn owners(members: &Members, keys: u64) -> Vec<std::net::SocketAddr> {
        let ring = ConsistentHash::default();
        (0..keys)
            .map(|key| {
                let index = ring.pick(&Pick::all(members, Some(key))).expect("picks");
                members.endpoints()[index].addr()
            })
            .collect()
    }

    #[test]
    fn same_key_same_endpoint() {
        let m = members(&[(1, 100), (2, 100), (3, 100)]);
        assert_eq!(owners(&m, 1000), owners(&m, 1000));
        // A fresh snapshot with the same instances builds the same ring.
        let again = members(&[(1, 100), (2, 100), (3, 100)]);
        assert_eq!(owners(&m, 1000), owners(&again, 1000));
    }

    #[test]
    fn a_fourth_instance_moves_at_most_35_percent() {
        let three = members(&[(1, 100), (2, 100), (3, 100)]);
        let four = members(&[(1, 100), (2, 100), (3, 100), (4, 100)]);
        let before = owners(&three, 1000);
        let after = owners(&four, 1000);
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        println!("consistent-hash: {moved} of 1000 keys moved when a 4th instance joined");
        assert!(moved <= 350, "{moved} keys moved");
        // Keys only move to the new instance.
        let new = four.endpoints()[3].addr();
        assert!(before.iter().zip(&after).all(|(a, b)| a == b || *b == new));
        // And the spread over three is even enough.
        let counts = distribution(&ConsistentHash::default(), &three, 3000);
        assert_shares(&counts, &[1.0 / 3.0; 3], 0.1);
    }

    #[test]
    fn a_skipped_endpoint_only_moves_its_own_keys() {
        let m = members(&[(1, 100), (2, 100), (3, 100)]);
        let excluded = [m.endpoints()[0].addr()];
        let ring = ConsistentHash::default();
        for key in 0..500 {
            let all = ring.pick(&Pick::all(&m, Some(key))).expect("picks");
            let skip = ring
                .pick(&Pick::new(&m, Some(key), &excluded, true))
                .expect("picks");
            if all != 0 {
                assert_eq!(all, skip);
            }
        }
    }

    #[test]
    fn respects_exclusions() {
        assert_respects_exclusions(
            &ConsistentHash::default(),
            &members(&[(1, 100), (2, 100), (3, 100)]),
        );
    }
}
