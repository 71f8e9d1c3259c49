//! The on-disk journal of a session's original register values, so a service that is killed
//! (SIGKILL, a crash, power to the process lost but not to the node) restores them at its next
//! start. One file per live session in `/run/likwid-access/journal/`, written before the
//! session's first write to each register; removed when the session ends.
//!
//! ```text
//! likwid-access journal 1 uid=1000 pid=4242 numbering=5.2
//! 3 0 0xc0010200 0x0
//! ```
//! Lines after the header: `CPU DEVICE REGISTER ORIGINAL` (device in the session's numbering).

use crate::policy::pci::Numbering;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const HEADER: &str = "likwid-access journal 1";
/// A journal larger than this was not written by us (a session journals at most 1 Mi registers,
/// about 40 bytes each).
const MAX_LEN: u64 = 64 << 20;

/// One register to put back.
pub type Entry = (u32, i32, u32, u64);

/// A live session's journal file.
#[derive(Debug)]
pub struct JournalFile {
    file: File,
    path: PathBuf,
}

impl JournalFile {
    /// Creates the file for session `id` (it must not exist) and writes the header.
    pub fn create(dir: &Path, id: u64, uid: u32, pid: i32, numbering: Numbering) -> io::Result<JournalFile> {
        let path = dir.join(format!("session-{id}"));
        let mut file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)?;
        file.write_all(format!("{HEADER} uid={uid} pid={pid} numbering={}\n", numbering.label()).as_bytes())?;
        Ok(JournalFile { file, path })
    }

    /// Appends one original value, in one write (a crash leaves whole lines or a torn last one).
    pub fn append(&mut self, (cpu, device, reg, old): Entry) -> io::Result<()> {
        self.file.write_all(format!("{cpu} {device} {reg:#x} {old:#x}\n").as_bytes())
    }

    pub fn remove(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            log::error!("cannot remove journal {}: {e}", self.path.display());
        }
    }
}

/// A journal read back at start.
#[derive(Debug, PartialEq, Eq)]
pub struct Replay {
    pub uid: u32,
    pub pid: i32,
    pub numbering: Numbering,
    /// In the order they were journaled (restore in reverse).
    pub entries: Vec<Entry>,
}

fn number<T: TryFrom<u64>>(word: &str) -> Option<T> {
    let v = match word.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => word.parse::<u64>().ok()?,
    };
    T::try_from(v).ok()
}

/// Parses a journal's text. A torn last line (no newline) is what a crash mid-append leaves:
/// it is dropped, since its register was not written yet.
pub fn parse(text: &str) -> Result<Replay, String> {
    let mut lines = text.split_inclusive('\n');
    let header = lines.next().ok_or("empty journal")?;
    let fields = header.trim_end().strip_prefix(HEADER).ok_or("not a journal (bad header)")?;
    let (mut uid, mut pid, mut numbering) = (None, 0, None);
    for field in fields.split_whitespace() {
        match field.split_once('=') {
            Some(("uid", v)) => uid = v.parse::<u32>().ok(),
            Some(("pid", v)) => pid = v.parse::<i32>().unwrap_or(0),
            Some(("numbering", v)) => numbering = Numbering::parse(v),
            _ => return Err(format!("unknown header field `{field}`")),
        }
    }
    let uid = uid.ok_or("header has no uid")?;
    let numbering = numbering.ok_or("header has no numbering")?;
    let mut entries = Vec::new();
    for (i, line) in lines.enumerate() {
        if !line.ends_with('\n') {
            break;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let entry = match w.as_slice() {
            [cpu, dev, reg, old] => (|| Some((number(cpu)?, number::<u32>(dev)? as i32, number(reg)?, number(old)?)))(),
            _ => None,
        };
        entries.push(entry.ok_or_else(|| format!("line {}: not `CPU DEVICE REG VALUE`", i + 2))?);
    }
    Ok(Replay { uid, pid, numbering, entries })
}

/// Reads one journal file without following symlinks; only root's regular files count.
fn read_journal(path: &Path) -> Result<Replay, String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() || meta.uid() != 0 {
        return Err("not a regular file of root's".into());
    }
    let mut text = String::new();
    file.take(MAX_LEN).read_to_string(&mut text).map_err(|e| e.to_string())?;
    parse(&text)
}

/// The journals a previous run left, each with what it says or why it cannot be used.
pub fn leftovers(dir: &Path) -> Vec<(PathBuf, Result<Replay, String>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    // Newest session first (`session-<id>`, numerically): where sessions wrote one register
    // in turn, the oldest original is written last and wins.
    let id = |p: &PathBuf| p.file_name()?.to_str()?.strip_prefix("session-")?.parse::<u64>().ok();
    found.sort_by_key(|p| std::cmp::Reverse(id(p)));
    found.into_iter().map(|p| (p.clone(), read_journal(&p))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_reads_back_what_was_appended() {
        let dir = std::env::temp_dir().join(format!("likwid-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut j = JournalFile::create(&dir, 7, 1000, 42, Numbering::Likwid53).unwrap();
        j.append((3, 0, 0xC001_0200, 0)).unwrap();
        j.append((1, 12, 0x1a0, u64::MAX)).unwrap();
        assert!(JournalFile::create(&dir, 7, 1000, 42, Numbering::Likwid53).is_err(), "never reuses a file");
        let text = std::fs::read_to_string(dir.join("session-7")).unwrap();
        let r = parse(&text).unwrap();
        assert_eq!((r.uid, r.pid, r.numbering), (1000, 42, Numbering::Likwid53));
        assert_eq!(r.entries, vec![(3, 0, 0xC001_0200, 0), (1, 12, 0x1a0, u64::MAX)]);
        if nix::unistd::getuid().is_root() {
            assert_eq!(leftovers(&dir).len(), 1);
            assert!(leftovers(&dir)[0].1.is_ok());
        }
        j.remove();
        assert!(leftovers(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_garbage_refused() {
        let r = parse("likwid-access journal 1 uid=5 pid=1 numbering=5.4\n0 0 0x10 0x1\n1 0 0x1").unwrap();
        assert_eq!(r.entries, vec![(0, 0, 0x10, 1)]);
        assert_eq!(r.numbering, Numbering::Likwid54);
        for bad in [
            "",
            "hello\n",
            "likwid-access journal 1 pid=1 numbering=5.2\n",
            "likwid-access journal 1 uid=1 numbering=9\n",
            "likwid-access journal 1 uid=1 numbering=5.2 evil=1\n",
            "likwid-access journal 1 uid=1 numbering=5.2\n0 0 zz 1\n",
            "likwid-access journal 1 uid=1 numbering=5.2\n0 0 0x10\n",
            "likwid-access journal 1 uid=1 numbering=5.2\n0 0 0x100000000 0\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
