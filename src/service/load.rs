//! Reading `service.conf` and the allowlists it names, trusted only when root controls them
//! (as the site files, `src/site.rs`): a symlink, a file or directory not owned by root, or one
//! that group or others may write is refused, and the service does not start (or, on SIGHUP,
//! keeps the configuration it has).

use super::config::{self, Config};
use crate::policy::Policy;
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Larger than this is not a file anyone reviews.
const MAX_LEN: u64 = 1 << 20;

/// The configuration with the allowlists its rules name, parsed.
#[derive(Debug, Default)]
pub struct Loaded {
    pub config: Config,
    pub allowlists: HashMap<PathBuf, Policy>,
    /// Where it came from, for the log.
    pub source: String,
}

fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    if meta.uid() != 0 {
        return Err(format!("{} is owned by uid {}, not root (chown root {0})", path.display(), meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("{} is writable by group or others (chmod go-w {0})", path.display()));
    }
    Ok(())
}

/// The text of a root-controlled file; None when it does not exist.
fn read_trusted(path: &Path) -> Result<Option<String>, String> {
    if let Some(dir) = path.parent() {
        match std::fs::symlink_metadata(dir) {
            Ok(meta) if meta.is_dir() => check_owner(dir, &meta)?,
            Ok(_) => return Err(format!("{} is not a directory (or is a symlink)", dir.display())),
            Err(_) => return Ok(None),
        }
    }
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(format!("{} is a symlink", path.display())),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let meta = file.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    check_owner(path, &meta)?;
    let mut text = String::new();
    file.take(MAX_LEN + 1).read_to_string(&mut text).map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > MAX_LEN {
        return Err(format!("{} is larger than 1 MiB", path.display()));
    }
    Ok(Some(text))
}

fn lookup_user(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
}

fn lookup_group(name: &str) -> Option<u32> {
    nix::unistd::Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw())
}

/// Loads `path`: no file means the default (only root is served); anything wrong is an error
/// naming the file and the fix.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let Some(text) = read_trusted(path)? else {
        return Ok(Loaded { source: format!("no {} (only root is served)", path.display()), ..Loaded::default() });
    };
    let mut config = config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for warning in config.resolve(lookup_user, lookup_group) {
        log::warn!("{}: {warning}", path.display());
    }
    let mut allowlists = HashMap::new();
    for rule in &config.rules {
        let Some(list) = &rule.allowlist else { continue };
        if allowlists.contains_key(list) {
            continue;
        }
        let text = read_trusted(list)
            .map_err(|e| format!("{} line {}: allowlist {e}", path.display(), rule.line))?
            .ok_or_else(|| format!("{} line {}: no allowlist {}", path.display(), rule.line, list.display()))?;
        let policy = Policy::new(format!("allowlist {}", list.display()), &text)
            .map_err(|e| format!("allowlist {}: {e}", list.display()))?;
        allowlists.insert(list.clone(), policy);
    }
    Ok(Loaded { config, allowlists, source: path.display().to_string() })
}
