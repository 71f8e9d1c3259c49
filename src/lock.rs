//! LIKWID's lock file `/var/run/likwid.lock` (LIKWID 5 `src/access-daemon/accessDaemon.c`,
//! `lock_check`): sites chown it to the user whose job may measure; everybody else is locked
//! out, root included.

use nix::errno::Errno;
use nix::unistd::{access, AccessFlags};
use std::path::PathBuf;
use std::time::Duration;

/// Why the lock counts as held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// The file belongs to another user (or exists and cannot be read, LIKWID's EACCES case).
    ByOwner(u32),
    /// Its state cannot be known (an error other than "no such file"): failing open here
    /// would let anyone who can make the check fail (a lowered RLIMIT_NOFILE, say) write
    /// during another user's locked measurement.
    Unknown(Errno),
}

/// The lock state: None when this user may measure. LIKWID treats every error other than
/// EACCES as unlocked; we fail closed instead: only "no such file" or a readable file owned
/// by `real_uid` unlocks. Needs no file descriptor (stat and access only), so a caller who
/// lowers the daemon's RLIMIT_NOFILE changes nothing.
pub fn holder(path: &std::path::Path, real_uid: u32) -> Option<Held> {
    match nix::sys::stat::stat(path) {
        Err(Errno::ENOENT) => None,
        Err(e) => Some(Held::Unknown(e)),
        Ok(st) if st.st_uid != real_uid => Some(Held::ByOwner(st.st_uid)),
        // LIKWID opens the file for reading: a file of ours we cannot read is still locked.
        Ok(st) => match access(path, AccessFlags::R_OK) {
            Ok(()) => None,
            Err(Errno::EACCES) => Some(Held::ByOwner(st.st_uid)),
            Err(e) => Some(Held::Unknown(e)),
        },
    }
}

/// `holder` for the service's clients, from one stat: a file owned by `client_uid` unlocks
/// whether the service could read it or not (it is not the client); anything else is judged
/// as `holder` judges it (missing: unlocked; another owner or an unknown state: locked).
fn owner_decides(path: &std::path::Path, client_uid: u32) -> Option<Held> {
    match nix::sys::stat::stat(path) {
        Err(Errno::ENOENT) => None,
        Err(e) => Some(Held::Unknown(e)),
        Ok(st) if st.st_uid == client_uid => None,
        Ok(st) => Some(Held::ByOwner(st.st_uid)),
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
    /// When the cached answer expires (coarse monotonic nanoseconds; 0: no answer cached, as
    /// before the first check or after a failed clock read), and the answer. Two plain fields,
    /// not an `Option` of a pair: the per-request test is one comparison and one flag.
    due: u64,
    cached_locked: bool,
    /// The last undeterminable state logged, so a persisting failure is logged once.
    logged: Option<Errno>,
    /// `RECHECK` in nanoseconds (tests shorten it).
    recheck_ns: u64,
    /// Service mode: the file's owner alone decides (see `for_client`).
    owner_decides: bool,
}

impl LockWatch {
    pub fn new(path: PathBuf, real_uid: u32) -> LockWatch {
        LockWatch {
            path,
            real_uid,
            due: 0,
            cached_locked: true,
            logged: None,
            recheck_ns: RECHECK.as_nanos() as u64,
            owner_decides: false,
        }
    }

    /// The service's watch for a client: the service is not the client, so whether the
    /// service could read the file says nothing about the client; a file owned by the
    /// client's uid unlocks, as in LIKWID for a file its owner can open.
    pub fn for_client(path: PathBuf, client_uid: u32) -> LockWatch {
        LockWatch { owner_decides: true, ..LockWatch::new(path, client_uid) }
    }

    /// Re-reads the file at most every `every` instead of `RECHECK` (zero: at every request).
    #[cfg(test)]
    pub fn set_recheck(&mut self, every: Duration) {
        self.recheck_ns = every.as_nanos() as u64;
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Reads the file now, whatever the clock says (start of a session, restore at its end).
    pub fn locked_now(&mut self) -> bool {
        let held = if self.owner_decides {
            owner_decides(&self.path, self.real_uid)
        } else {
            holder(&self.path, self.real_uid)
        };
        match held {
            Some(Held::Unknown(e)) if self.logged != Some(e) => {
                log::warn!("cannot check the lock file {} ({e}): treating it as locked", self.path.display());
                self.logged = Some(e);
            }
            Some(Held::Unknown(_)) => {}
            _ => self.logged = None,
        }
        held.is_some()
    }

    /// The lock state as of at most `RECHECK` ago. Called for every request, batched or not
    /// (each request of a batch gets its own answer, so a lock taken mid-batch stops the
    /// requests after it exactly as it stops single requests).
    #[inline(always)]
    pub fn locked(&mut self) -> bool {
        // The coarse clock (a few ms resolution) costs a fraction of the precise one on this
        // per-request path, and a lock need not be seen to the millisecond. A failing clock
        // read means "check now".
        let now = crate::sys::coarse_monotonic_ns();
        match now {
            Some(now) if now < self.due => self.cached_locked,
            _ => self.recheck(now),
        }
    }

    /// `locked` when its answer is due (or the clock failed): reads the file. Kept out of
    /// line so the per-request part inlines small.
    #[cold]
    #[inline(never)]
    fn recheck(&mut self, now: Option<u64>) -> bool {
        let locked = self.locked_now();
        self.due = now.map_or(0, |now| now.saturating_add(self.recheck_ns));
        self.cached_locked = locked;
        locked
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
        assert_eq!(holder(&path, uid), None);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(holder(&path, uid), None, "owned by us");
        assert_eq!(holder(&path, uid.wrapping_add(1)), Some(Held::ByOwner(uid)), "owned by someone else");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn for_a_client_the_owner_alone_decides_in_one_stat() {
        let dir = std::env::temp_dir().join(format!("likwid-lock-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("likwid.lock");
        let _ = std::fs::remove_file(&path);
        let uid = nix::unistd::getuid().as_raw();
        assert_eq!(owner_decides(&path, uid), None, "missing");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
        assert_eq!(owner_decides(&path, uid), None, "the client's own file, readable or not");
        assert_eq!(owner_decides(&path, uid.wrapping_add(1)), Some(Held::ByOwner(uid)));
        let not_a_dir = std::path::Path::new("/dev/null/likwid.lock");
        assert_eq!(owner_decides(not_a_dir, uid), Some(Held::Unknown(Errno::ENOTDIR)));
        let mut watch = LockWatch::for_client(path.clone(), uid.wrapping_add(1));
        assert!(watch.locked_now());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lock_whose_state_cannot_be_read_is_locked() {
        // ENOTDIR and ENAMETOOLONG stand for every error but ENOENT (EMFILE, ENOMEM, EIO...):
        // LIKWID reads them as unlocked.
        let uid = nix::unistd::getuid().as_raw();
        let not_a_dir = std::path::Path::new("/dev/null/likwid.lock");
        assert_eq!(holder(not_a_dir, uid), Some(Held::Unknown(Errno::ENOTDIR)));
        let long = PathBuf::from(format!("/tmp/{}", "x".repeat(5000)));
        assert_eq!(holder(&long, uid), Some(Held::Unknown(Errno::ENAMETOOLONG)));
        let mut watch = LockWatch::new(not_a_dir.to_path_buf(), uid);
        assert!(watch.locked() && watch.locked_now());
    }
}
