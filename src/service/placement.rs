//! Where a connection's thread runs: on the CPUs its client may run on. A daemon our library
//! spawns is the client's child and inherits the affinity of the thread that started it, so a
//! pinned application and its daemon share a CPU and a round trip costs no cross-CPU wake-up.
//! The service is nobody's child: left alone, its thread runs wherever the scheduler last put
//! it, often the other CPU (measured: 2.7x the spawned daemon's single read with the client
//! pinned to CPU 0; see the README's Performance). So a connection's thread takes the affinity
//! of its client (the main thread of the peer process: Slurm's task binding, `likwid-pin`,
//! `taskset` all set it there) and checks it again now and then, so a client that pins itself
//! after connecting is followed. On a node this also keeps the service's work for a job on the
//! job's own CPUs.
//!
//! The thread stays within the service's own CPUs (its affinity at start: a unit's
//! `CPUAffinity=` keeps holding): it takes the CPUs it shares with its client. Placement is best
//! effort and decides nothing: a mask that cannot be read or applied (another pid namespace, a
//! process gone, no CPU in common, CPUs outside the service's cpuset or offline, more CPUs than a
//! mask holds) leaves the thread on the service's own CPUs, and nothing is logged. A reused pid
//! can only move the thread, never change what the session may do.

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// How often a session's thread looks at its client's affinity again (coarse clock, ns): one
/// system call per check, so well below once per request (a single read is ~8 us).
const RECHECK_NS: u64 = 100_000_000;
/// Requests between two looks at the clock (a vDSO read is ~20 instructions).
const CLOCK_EVERY: u32 = 16;

/// The service's own CPUs: where every connection thread may run, and returns to.
pub struct Home {
    cpus: CpuSet,
    /// One past the highest of them (the masks are compared up to it).
    end: usize,
}

/// The CPUs of the calling thread now.
pub fn own_cpus() -> Option<Home> {
    let cpus = sched_getaffinity(Pid::from_raw(0)).ok()?;
    let end = (0..CpuSet::count()).rev().find(|&c| cpus.is_set(c).unwrap_or(false))? + 1;
    Some(Home { cpus, end })
}

impl Home {
    /// The CPUs of `mask` that are the service's too; None when that is all of them (nothing
    /// to narrow) or none (nowhere to go).
    fn narrowed(&self, mask: &CpuSet) -> Option<CpuSet> {
        let mut common = CpuSet::new();
        let (mut any, mut all) = (false, true);
        for cpu in 0..self.end {
            if self.cpus.is_set(cpu).unwrap_or(false) {
                if mask.is_set(cpu).unwrap_or(false) {
                    common.set(cpu).ok()?;
                    any = true;
                } else {
                    all = false;
                }
            }
        }
        (any && !all).then_some(common)
    }
}

/// One connection thread's placement after its client; restores `home` when dropped (the
/// thread then waits for the next connection, which may be anyone's).
pub struct Placement<'a> {
    pid: i32,
    home: Option<&'a Home>,
    /// The client's mask as last applied (None: the thread is at home).
    applied: Option<CpuSet>,
    next_check: u64,
    /// Requests until the next look at the clock.
    countdown: u32,
}

impl<'a> Placement<'a> {
    /// Places the calling thread on the CPUs of process `pid` (as SO_PEERCRED gave it).
    pub fn follow(pid: i32, home: Option<&'a Home>) -> Placement<'a> {
        let mut p = Placement { pid, home, applied: None, next_check: 0, countdown: CLOCK_EVERY };
        p.check(crate::sys::coarse_monotonic_ns().unwrap_or(0));
        p
    }

    /// Per request: looks at the client's mask again once RECHECK_NS has passed (at most a
    /// clock read otherwise, every CLOCK_EVERY requests).
    pub fn recheck(&mut self) {
        self.countdown -= 1;
        if self.countdown > 0 {
            return;
        }
        self.countdown = CLOCK_EVERY;
        let now = crate::sys::coarse_monotonic_ns().unwrap_or(0);
        if now >= self.next_check {
            self.check(now);
        }
    }

    fn check(&mut self, now: u64) {
        self.next_check = now.saturating_add(RECHECK_NS);
        // Without knowing its own CPUs the thread could not come back: it stays.
        let Some(home) = self.home else { return };
        let client = if self.pid > 0 { sched_getaffinity(Pid::from_raw(self.pid)).ok() } else { None };
        // An unpinned client (all the service's CPUs) needs no system call either way.
        let wanted = client.and_then(|mask| home.narrowed(&mask));
        if wanted == self.applied {
            return;
        }
        // Pinned where the kernel lets us (it refuses a mask with no CPU of the service's
        // cpuset that is online); else home, so a stale pin never outlives the client's.
        self.applied = match wanted {
            Some(mask) if sched_setaffinity(Pid::from_raw(0), &mask).is_ok() => Some(mask),
            _ => {
                self.go_home();
                None
            }
        };
    }

    fn go_home(&self) {
        if let Some(home) = self.home {
            let _ = sched_setaffinity(Pid::from_raw(0), &home.cpus);
        }
    }
}

impl Drop for Placement<'_> {
    fn drop(&mut self) {
        if self.applied.is_some() {
            self.go_home();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus_of_this_thread() -> Vec<usize> {
        let set = sched_getaffinity(Pid::from_raw(0)).unwrap();
        (0..CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect()
    }

    #[test]
    fn only_the_cpus_the_service_has_too() {
        let mut cpus = CpuSet::new();
        for c in [1, 2, 3] {
            cpus.set(c).unwrap();
        }
        let home = Home { cpus, end: 4 };
        let mask = |list: &[usize]| {
            let mut m = CpuSet::new();
            list.iter().for_each(|&c| m.set(c).unwrap());
            m
        };
        assert_eq!(home.narrowed(&mask(&[2])), Some(mask(&[2])));
        assert_eq!(home.narrowed(&mask(&[0, 2, 7])), Some(mask(&[2])), "not outside the service's CPUs");
        assert_eq!(home.narrowed(&mask(&[0, 1, 2, 3])), None, "all of them: nothing to narrow");
        assert_eq!(home.narrowed(&mask(&[1, 2, 3])), None);
        assert_eq!(home.narrowed(&mask(&[0, 5])), None, "none in common: home");
    }

    /// A child pinned to one CPU: the thread follows it, and is back home when dropped; a
    /// client that cannot be read leaves the thread at home.
    #[test]
    fn a_thread_follows_its_clients_affinity_and_returns_home() {
        std::thread::spawn(|| {
            let home = own_cpus().unwrap();
            let all = cpus_of_this_thread();
            let cpu = *all.last().unwrap();
            let mut child = std::process::Command::new("taskset")
                .args(["-c", &cpu.to_string(), "sleep", "10"])
                .spawn()
                .or_else(|_| std::process::Command::new("sleep").arg("10").spawn())
                .unwrap();
            // taskset pins itself, then execs sleep: wait until the pin shows.
            let pid = child.id() as i32;
            let mut pinned = false;
            for _ in 0..200 {
                let mask = sched_getaffinity(Pid::from_raw(pid)).unwrap();
                if (0..CpuSet::count()).filter(|&c| mask.is_set(c).unwrap_or(false)).eq([cpu]) {
                    pinned = true;
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            {
                let _p = Placement::follow(pid, Some(&home));
                if pinned {
                    assert_eq!(cpus_of_this_thread(), vec![cpu]);
                }
            }
            assert_eq!(cpus_of_this_thread(), all, "home again");
            for gone in [0, -1, i32::MAX] {
                let _p = Placement::follow(gone, Some(&home));
                assert_eq!(cpus_of_this_thread(), all, "pid {gone}: stays home");
            }
            let _ = child.kill();
            let _ = child.wait();
        })
        .join()
        .unwrap();
    }
}
