//! The administrator's site policy in `/etc/likwid-access/`: `msr-allowlist` (msr-safe's
//! format; replaces the built-in table for this machine) and `read-only` (present: every write
//! is denied, for shared nodes). Trusted only when root controls them: a symlink, a file or
//! directory not owned by root, or one that group or others may write is refused, and the
//! daemon then refuses to serve rather than fall back to a policy the admin did not intend.

use crate::error::StartError;
use crate::policy::pci::Numbering;
use crate::root::Root;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const SITE_DIR: &str = "etc/likwid-access";
pub const ALLOWLIST: &str = "msr-allowlist";
pub const READ_ONLY: &str = "read-only";
/// `5.2`, `5.3` or `5.4`: how unmodified LIKWID clients on this node number PCI devices.
pub const PCI_NUMBERING: &str = "pci-numbering";
/// A site file larger than this is not an allowlist anyone can review.
const MAX_LEN: u64 = 1 << 20;

#[derive(Debug, Default)]
pub struct Site {
    /// Path and text of the site allowlist, when one is installed.
    pub allowlist: Option<(PathBuf, String)>,
    pub read_only: bool,
    /// The PciDeviceIndex numbering LIKWID clients use here, when the admin set it.
    pub pci_numbering: Option<Numbering>,
}

fn untrusted(path: &Path, why: &str) -> StartError {
    let message = format!("site policy {} refused: {why}", path.display());
    log::error!("{message}");
    StartError::new(libc::EACCES, message)
}

fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), StartError> {
    if meta.uid() != 0 {
        return Err(untrusted(path, &format!("owned by uid {}, not root (chown root {})", meta.uid(), path.display())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(untrusted(path, &format!("writable by group or others (chmod go-w {})", path.display())));
    }
    Ok(())
}

/// Opens a site file without following symlinks; None when it does not exist.
fn open_trusted(path: &Path) -> Result<Option<File>, StartError> {
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(untrusted(path, "it is a symlink")),
        Err(e) => return Err(untrusted(path, &e.to_string())),
    };
    let meta = file.metadata().map_err(|e| untrusted(path, &e.to_string()))?;
    if !meta.is_file() {
        return Err(untrusted(path, "not a regular file"));
    }
    check_owner(path, &meta)?;
    Ok(Some(file))
}

/// Reads the site policy under `root`.
pub fn load(root: &Root) -> Result<Site, StartError> {
    let dir = root.base().join(SITE_DIR);
    let meta = match std::fs::symlink_metadata(&dir) {
        Ok(m) => m,
        Err(_) => return Ok(Site::default()),
    };
    if !meta.is_dir() {
        return Err(untrusted(&dir, "not a directory (or a symlink)"));
    }
    check_owner(&dir, &meta)?;
    let allow_path = dir.join(ALLOWLIST);
    let allowlist = match open_trusted(&allow_path)? {
        Some(file) => {
            let mut text = String::new();
            file.take(MAX_LEN + 1).read_to_string(&mut text).map_err(|e| untrusted(&allow_path, &e.to_string()))?;
            if text.len() as u64 > MAX_LEN {
                return Err(untrusted(&allow_path, "larger than 1 MiB"));
            }
            Some((allow_path, text))
        }
        None => None,
    };
    let read_only = open_trusted(&dir.join(READ_ONLY))?.is_some();
    let numbering_path = dir.join(PCI_NUMBERING);
    let pci_numbering = match open_trusted(&numbering_path)? {
        Some(mut file) => {
            let mut text = String::new();
            file.read_to_string(&mut text).map_err(|e| untrusted(&numbering_path, &e.to_string()))?;
            Some(Numbering::parse(&text).ok_or_else(|| untrusted(&numbering_path, "want `5.2`, `5.3` or `5.4`"))?)
        }
        None => None,
    };
    Ok(Site { allowlist, read_only, pci_numbering })
}

/// The numbering an unmodified LIKWID client speaks when the client itself does not tell
/// (a static build, or a library name we do not know): the admin's choice, else that of the
/// LIKWID library installed on the host (Debian bookworm ships 5.2.2), else 5.4's. Returns the
/// numbering and what decided it, for the log.
pub fn likwid_client_numbering(root: &Root) -> (Numbering, String) {
    let numbering_file = root.base().join(SITE_DIR).join(PCI_NUMBERING);
    match load(root) {
        Ok(Site { pci_numbering: Some(n), .. }) => return (n, format!("site file {}", numbering_file.display())),
        Ok(_) => {}
        // `load` logged why; a broken site policy also stops the engine from opening.
        Err(_) => {}
    }
    for version in ["5.2", "5.3", "5.4", "5.5"] {
        for dir in ["usr/lib/x86_64-linux-gnu", "usr/lib64", "usr/lib", "usr/local/lib"] {
            let path = Path::new("/").join(dir).join(format!("liblikwid.so.{version}"));
            if path.exists() {
                let n = Numbering::parse(version).expect("known versions parse");
                return (n, format!("the installed library {}", path.display()));
            }
        }
    }
    (Numbering::Likwid54, "no LIKWID library installed in a system directory: the newest numbering".into())
}
