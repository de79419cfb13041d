//! CPU time of this process, from `getrusage(RUSAGE_SELF)`, its allocation count (from the
//! counting global allocator) and resident memory from `/proc/self/statm`.

use std::time::Duration;

use crate::alloc_count;

/// What a process has used so far: CPU time and allocations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time, all threads.
    pub cpu: CpuTime,
    /// Heap allocations made ([`alloc_count::allocations`]).
    pub allocations: u64,
}

impl Usage {
    /// This process's usage now.
    pub fn current() -> Usage {
        Usage {
            cpu: process_cpu(),
            allocations: alloc_count::allocations(),
        }
    }

    /// What was used between `earlier` and `self`.
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            cpu: self.cpu.since(&earlier.cpu),
            allocations: self.allocations.saturating_sub(earlier.allocations),
        }
    }
}

/// User plus system CPU time a process has used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// Time spent in user mode.
    pub user: Duration,
    /// Time spent in the kernel on the process's behalf.
    pub system: Duration,
}

impl CpuTime {
    /// User plus system time.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The CPU time used between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    /// Both figures in microseconds, as the server reports them on its control line.
    pub fn to_micros(self) -> (u64, u64) {
        (
            u64::try_from(self.user.as_micros()).unwrap_or(u64::MAX),
            u64::try_from(self.system.as_micros()).unwrap_or(u64::MAX),
        )
    }

    /// The inverse of [`CpuTime::to_micros`].
    pub fn from_micros(user: u64, system: u64) -> CpuTime {
        CpuTime {
            user: Duration::from_micros(user),
            system: Duration::from_micros(system),
        }
    }
}

/// The CPU time of the whole calling process, all threads included.
pub fn process_cpu() -> CpuTime {
    // SAFETY: getrusage only writes into the struct we hand it; all-zero is a valid rusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer cannot fail.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return CpuTime::default();
    }
    CpuTime {
        user: timeval(usage.ru_utime),
        system: timeval(usage.ru_stime),
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(tv.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(tv.tv_usec).unwrap_or(0))
}

/// The resident set size of this process in bytes, from `/proc/self/statm`.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = process_cpu();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = process_cpu();
        assert!(after.total() >= before.total());
        assert!(resident_bytes().unwrap_or(0) > 0);
    }
}
