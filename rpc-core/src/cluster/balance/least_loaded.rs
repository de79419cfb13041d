//! `least-loaded`: power of two choices over in-flight calls and a latency average.

use std::time::Duration;

use rand::Rng;

use super::{LoadBalancer, Pick};
use crate::cluster::endpoint::Endpoint;

/// The latency assumed for an endpoint that has not answered yet.
const UNKNOWN_LATENCY: Duration = Duration::from_millis(1);

/// Calls in flight this long with none ending make an endpoint look unhealthy.
const UNHEALTHY_SILENCE: Duration = Duration::from_millis(250);

fn looks_unhealthy(endpoint: &Endpoint) -> bool {
    endpoint.last_failed() || endpoint.silence() >= UNHEALTHY_SILENCE
}

/// Draws two allowed endpoints at random and takes the less loaded one, where load is
/// `(in-flight calls + 1) × max(latency moving average, silence)`. Two random choices avoid
/// the herd that "always the least loaded" causes when many consumers see the same numbers,
/// and cost O(1). An endpoint that has not answered yet is assumed to take 1 ms.
///
/// Errors and silence are cost: a failed attempt enters the average as at least 1 s (so a
/// provider answering errors instantly does not look fastest), and while calls are in flight
/// with none ending, the time since the last one ended counts as latency (so a hung provider
/// does not look idle while its average decays).
///
/// When the better of the two looks unhealthy (its last attempt failed, or calls to it have
/// been in flight for a while with none ending), every allowed endpoint is compared instead:
/// two random choices alone give the better of two bad providers a third of the calls
/// when two of three are bad.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastLoaded;

/// The load score of an endpoint; lower is better.
pub(crate) fn load(endpoint: &Endpoint) -> f64 {
    let latency = endpoint
        .latency()
        .unwrap_or(UNKNOWN_LATENCY)
        .max(endpoint.silence())
        .as_secs_f64();
    (endpoint.in_flight() as f64 + 1.0) * latency
}

impl LoadBalancer for LeastLoaded {
    fn name(&self) -> &'static str {
        "least-loaded"
    }

    fn pick(&self, pick: &Pick<'_>) -> Option<usize> {
        let len = pick.endpoints().len();
        let mut rng = rand::thread_rng();
        let (a, b) = match len {
            0 => return None,
            1 => return pick.is_allowed(0).then_some(0),
            _ => {
                let a = rng.gen_range(0..len);
                let b = (a + rng.gen_range(1..len)) % len;
                if pick.is_allowed(a) && pick.is_allowed(b) {
                    (a, b)
                } else {
                    // Some are skipped: draw two distinct ranks among the allowed ones.
                    match pick.allowed_count() {
                        0 => return None,
                        1 => return pick.nth_allowed(0),
                        n => {
                            let ra = rng.gen_range(0..n);
                            let rb = (ra + rng.gen_range(1..n)) % n;
                            (pick.nth_allowed(ra)?, pick.nth_allowed(rb)?)
                        }
                    }
                }
            }
        };
        let endpoints = pick.endpoints();
        let best = if load(&endpoints[b]) < load(&endpoints[a]) {
            b
        } else {
            a
        };
        if !looks_unhealthy(&endpoints[best]) {
            return Some(best);
        }
        // Compare every allowed endpoint; ties go to the first found after a random start,
        // so equal endpoints share the load.
        let start = rng.gen_range(0..len);
        let mut chosen = best;
        let mut lowest = load(&endpoints[best]);
        for index in (0..len).map(|offset| (start + offset) % len) {
            if pick.is_allowed(index) {
                let cost = load(&endpoints[index]);
                if cost < lowest {
                    (chosen, lowest) = (index, cost);
                }
            }
        }
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::cluster::endpoint::testing::members;
    use std::sync::atomic::Ordering;

    #[test]
    fn prefers_the_less_loaded() {
        let m = members(&[(1, 100), (2, 100), (3, 100)]);
        m.endpoints()[0]
            .state()
            .in_flight
            .store(20, Ordering::Relaxed);
        let counts = distribution(&LeastLoaded, &m, 1000);
        assert_eq!(counts[0], 0, "the busy endpoint was picked: {counts:?}");
        assert!(counts[1] > 300 && counts[2] > 300, "{counts:?}");

        // Equal in-flight, one ten times slower.
        let m = members(&[(1, 100), (2, 100)]);
        m.endpoints()[0]
            .state()
            .observe_latency(Duration::from_millis(50));
        m.endpoints()[1]
            .state()
            .observe_latency(Duration::from_millis(5));
        let counts = distribution(&LeastLoaded, &m, 200);
        assert_eq!(counts, [0, 200]);
    }

    #[test]
    fn spreads_evenly_when_idle() {
        let m = members(&[(1, 100), (2, 100), (3, 100)]);
        let counts = distribution(&LeastLoaded, &m, 3000);
        assert_shares(&counts, &[1.0 / 3.0; 3], 0.1);
    }

    #[test]
    fn respects_exclusions() {
        assert_respects_exclusions(&LeastLoaded, &members(&[(1, 100), (2, 100), (3, 100)]));
    }

    /// One healthy provider (10 ms), one failing in 1 ms, one that never answers (each
    /// attempt ends at a 1 s attempt timeout); 20 workers for 30 simulated seconds.
    #[tokio::test(start_paused = true)]
    async fn fast_failing_and_hung_providers_each_get_under_10_percent_of_attempts() {
        use crate::cluster::outcome::Outcome;
        use std::sync::atomic::AtomicU64;
        use std::sync::Arc;
        use tokio::time::{sleep, Instant};

        let m = Arc::new(members(&[(1, 100), (2, 100), (3, 100)]));
        let counts: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
        let end = Instant::now() + Duration::from_secs(30);
        let workers: Vec<_> = (0..20)
            .map(|_| {
                let (m, counts) = (Arc::clone(&m), Arc::clone(&counts));
                tokio::spawn(async move {
                    while Instant::now() < end {
                        let index = LeastLoaded.pick(&Pick::all(&m, None)).expect("an endpoint");
                        counts[index].fetch_add(1, Ordering::Relaxed);
                        let state = m.endpoints()[index].state();
                        state.begin_attempt();
                        let started = Instant::now();
                        let outcome = match index {
                            0 => {
                                sleep(Duration::from_millis(10)).await;
                                Outcome::Success
                            }
                            1 => {
                                sleep(Duration::from_millis(1)).await;
                                Outcome::Error
                            }
                            _ => {
                                sleep(Duration::from_secs(1)).await;
                                Outcome::Timeout
                            }
                        };
                        state.finish_attempt(outcome, false, started.elapsed());
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
        let counts: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        println!("attempts: healthy, failing, hung = {counts:?}");
        assert!(
            counts[1] * 10 < total,
            "the fast-failing provider got {} of {total} attempts",
            counts[1]
        );
        assert!(
            counts[2] * 10 < total,
            "the hung provider got {} of {total} attempts",
            counts[2]
        );
    }
}
