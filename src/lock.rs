//! LIKWID's lock file (facts §3): sites chown `/var/run/likwid.lock` to the user whose job may
//! measure; everybody else is locked out, root included.

use nix::time::{clock_gettime, ClockId};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

/// LIKWID's rule: missing or unopenable for another reason → unlocked; EACCES → locked;
/// opened → locked unless owned by the caller's real uid.
pub fn is_locked(path: &std::path::Path, real_uid: u32) -> bool {
    match std::fs::File::open(path) {
        Ok(f) => f.metadata().is_ok_and(|m| m.uid() != real_uid),
        Err(e) => e.raw_os_error() == Some(libc::EACCES),
    }
}

/// How stale a lock answer may get: a lock taken mid-session applies within this.
pub const RECHECK: Duration = Duration::from_millis(250);

/// The lock state, re-read at most every `RECHECK` so the request path stays cheap. A clone
/// watches the same file on its own clock.
#[derive(Debug, Clone)]
pub struct LockWatch {
    path: PathBuf,
    real_uid: u32,
    checked: Option<(Duration, bool)>,
}

impl LockWatch {
    pub fn new(path: PathBuf, real_uid: u32) -> LockWatch {
        LockWatch { path, real_uid, checked: None }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn locked(&mut self) -> bool {
        // The coarse clock (a few ms resolution) costs a fraction of the precise one on this
        // per-request path, and a lock need not be seen to the millisecond.
        let now = clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE).map_or(Duration::ZERO, Duration::from);
        match self.checked {
            Some((at, locked)) if now.saturating_sub(at) < RECHECK && now != Duration::ZERO => locked,
            _ => {
                let locked = is_locked(&self.path, self.real_uid);
                self.checked = Some((now, locked));
                locked
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_lock_is_unlocked_and_own_lock_is_unlocked() {
        let dir = std::env::temp_dir().join(format!("likwid-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("likwid.lock");
        let _ = std::fs::remove_file(&path);
        let uid = nix::unistd::getuid().as_raw();
        assert!(!is_locked(&path, uid));
        std::fs::write(&path, b"").unwrap();
        assert!(!is_locked(&path, uid), "owned by us");
        assert!(is_locked(&path, uid.wrapping_add(1)), "owned by someone else");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
