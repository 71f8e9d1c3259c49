//! MSRs through `/dev/cpu/N/msr`, or a simulated register store in the same place.
//!
//! The kernel's msr device reads 8 bytes at offset = register. A regular file cannot do that
//! (PERF_CTL0 0xC0010200 and PERF_CTR0 0xC0010201 would share 7 bytes), so a regular file is a
//! register store with register R at offset 8·R. The file type alone picks the layout.

use super::RegisterDevice;
use crate::error::StartError;
use crate::root::Root;
use std::ffi::{CStr, OsStr};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

#[derive(Debug)]
pub struct MsrFile {
    file: File,
    /// `file`'s descriptor, for the read path (std's `as_fd` is a call per read).
    fd: std::os::fd::RawFd,
    /// Bytes per register address: 1 for the kernel device, 8 for a register store.
    stride: u64,
}

impl MsrFile {
    pub fn open(path: &Path) -> io::Result<MsrFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let stride = if file.metadata()?.file_type().is_char_device() { 1 } else { 8 };
        Ok(MsrFile { fd: file.as_raw_fd(), file, stride })
    }

    /// `open` for a path already NUL-terminated (one openat and one fstat, nothing else).
    fn open_c(path: &CStr) -> io::Result<MsrFile> {
        let (file, char_device) = crate::sys::open_rdwr_is_char_device(path)?;
        Ok(MsrFile { fd: file.as_raw_fd(), file, stride: if char_device { 1 } else { 8 } })
    }

    /// Another handle on the same open device (for a worker thread).
    pub fn try_clone(&self) -> io::Result<MsrFile> {
        let file = self.file.try_clone()?;
        Ok(MsrFile { fd: file.as_raw_fd(), file, stride: self.stride })
    }

    pub fn is_register_store(&self) -> bool {
        self.stride == 8
    }

    fn offset(&self, reg: u32) -> u64 {
        u64::from(reg) * self.stride
    }
}

impl MsrFile {
    /// The register's value, or the errno of the failed read: the engine's MSR read path,
    /// inlined into it (no `io::Error` per read).
    #[inline(always)]
    pub fn read_value(&self, reg: u32) -> Result<u64, i32> {
        let (n, value) = crate::sys::pread8(self.fd, self.offset(reg))?;
        // A register store reads zeros past its end, like a register nobody wrote yet.
        if n != 8 && !self.is_register_store() {
            return Err(libc::EIO);
        }
        Ok(value)
    }
}

impl RegisterDevice for MsrFile {
    fn read(&self, reg: u32) -> io::Result<u64> {
        self.read_value(reg).map_err(io::Error::from_raw_os_error)
    }

    fn write(&self, reg: u32, value: u64) -> io::Result<()> {
        let n = crate::sys::pwrite_plain(self.file.as_fd(), &value.to_le_bytes(), self.offset(reg))?;
        if n != 8 {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }
}

/// `n` in decimal at the end of `out` (what `write!(out, "{n}")` writes, without fmt).
fn push_decimal(out: &mut Vec<u8>, n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn no_msr_driver(dir: &Path) -> StartError {
    StartError::new(
        libc::ENXIO,
        format!("no MSR device files in {}: load the msr kernel module (modprobe msr)", dir.display()),
    )
}

/// The CPU ids with an msr file under the root, sorted; ids need not be consecutive.
pub fn list_cpus(root: &Root) -> Result<Vec<u32>, StartError> {
    let dir = root.msr_dir();
    let entries = std::fs::read_dir(&dir).map_err(|_| no_msr_driver(&dir))?;
    let mut cpus: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|cpu| root.msr(*cpu).exists())
        .collect();
    cpus.sort_unstable();
    if cpus.is_empty() {
        return Err(no_msr_driver(&dir));
    }
    Ok(cpus)
}

/// One open msr file per CPU, opened together at start (before any privilege drop).
#[derive(Debug)]
pub struct MsrDevices {
    cpus: Vec<(u32, MsrFile)>,
}

impl MsrDevices {
    pub fn open_all(root: &Root) -> Result<MsrDevices, StartError> {
        // The CPUs `list_cpus` finds, without its existence check per CPU: the open says it
        // (two system calls per CPU at start instead of three).
        let dir = root.msr_dir();
        let mut ids: Vec<u32> = Vec::new();
        crate::sys::for_each_name(&dir, |name| {
            ids.extend(std::str::from_utf8(name).ok().and_then(|n| n.parse::<u32>().ok()))
        })
        .map_err(|_| no_msr_driver(&dir))?;
        ids.sort_unstable();
        let mut cpus = Vec::with_capacity(ids.len());
        // `dir/N/msr` written into one NUL-terminated buffer: `Root::msr` builds three paths per
        // CPU, which cost the daemon about 1 900 instructions per CPU at start, and formatting
        // the number plus std's open and metadata still ~1 000 (callgrind, 256 CPUs).
        let mut path = dir.as_os_str().as_bytes().to_vec();
        path.push(b'/');
        let dir_len = path.len();
        for cpu in ids {
            path.truncate(dir_len);
            push_decimal(&mut path, cpu);
            path.extend_from_slice(b"/msr\0");
            let opened = match CStr::from_bytes_with_nul(&path) {
                Ok(c_path) => MsrFile::open_c(c_path),
                // A NUL inside the directory's name (it came from the root): no such file.
                Err(_) => Err(io::Error::from(io::ErrorKind::NotFound)),
            };
            match opened {
                Ok(file) => cpus.push((cpu, file)),
                // A CPU directory without an msr file (cpuid only), or no directory: not an msr CPU.
                Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {}
                Err(e) => return Err(open_error(Path::new(OsStr::from_bytes(&path[..path.len() - 1])), &e)),
            }
        }
        if cpus.is_empty() {
            return Err(no_msr_driver(&dir));
        }
        Ok(MsrDevices { cpus })
    }

    #[inline(always)]
    pub fn get(&self, cpu: u32) -> Option<&MsrFile> {
        // CPUs are mostly numbered 0..n without gaps: then position `cpu` holds it.
        if let Some((c, file)) = self.cpus.get(cpu as usize) {
            if *c == cpu {
                return Some(file);
            }
        }
        let i = self.cpus.binary_search_by_key(&cpu, |(c, _)| *c).ok()?;
        Some(&self.cpus[i].1)
    }

    /// The devices of one CPU only, sharing the open files.
    pub fn only(&self, cpu: u32) -> io::Result<MsrDevices> {
        let file = self.get(cpu).ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))?.try_clone()?;
        Ok(MsrDevices { cpus: vec![(cpu, file)] })
    }

    /// True when some CPU is served by the kernel's msr driver (not a simulated store).
    pub fn any_kernel_device(&self) -> bool {
        self.cpus.iter().any(|(_, f)| !f.is_register_store())
    }

    pub fn cpu_ids(&self) -> Vec<u32> {
        self.cpus.iter().map(|(c, _)| *c).collect()
    }
}

fn open_error(path: &Path, e: &io::Error) -> StartError {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => StartError::new(
            libc::EACCES,
            format!(
                "cannot open {}: permission denied; install likwid-accessD setuid root or with \
                 cap_sys_rawio (see README, Install)",
                path.display()
            ),
        ),
        _ => StartError::new(libc::ENXIO, format!("cannot open {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("likwid-msr-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn register_store_keeps_neighbouring_registers_apart() {
        let dir = scratch("store");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("msr");
        File::create(&path).unwrap();
        let msr = MsrFile::open(&path).unwrap();
        assert!(msr.is_register_store());
        assert_eq!(msr.read(0xC001_0200).unwrap(), 0, "unwritten register reads 0");
        msr.write(0xC001_0200, 0x1111_2222_3333_4444).unwrap();
        msr.write(0xC001_0201, 0x5555_6666_7777_8888).unwrap();
        assert_eq!(msr.read(0xC001_0200).unwrap(), 0x1111_2222_3333_4444);
        assert_eq!(msr.read(0xC001_0201).unwrap(), 0x5555_6666_7777_8888);
        let raw = std::fs::File::open(&path).unwrap();
        let mut b = [0u8; 8];
        std::os::unix::fs::FileExt::read_exact_at(&raw, &mut b, 8 * 0xC001_0201).unwrap();
        assert_eq!(u64::from_le_bytes(b), 0x5555_6666_7777_8888);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cpus_come_from_numbered_directories_with_an_msr_file() {
        let dir = scratch("list");
        for cpu in [0, 3, 12] {
            std::fs::create_dir_all(dir.join(format!("dev/cpu/{cpu}"))).unwrap();
            File::create(dir.join(format!("dev/cpu/{cpu}/msr"))).unwrap();
        }
        std::fs::create_dir_all(dir.join("dev/cpu/5")).unwrap(); // cpuid only, no msr
        std::fs::create_dir_all(dir.join("dev/cpu/microcode")).unwrap();
        let root = Root::new(&dir);
        assert_eq!(list_cpus(&root).unwrap(), vec![0, 3, 12]);
        let devs = MsrDevices::open_all(&root).unwrap();
        assert!(devs.get(3).is_some() && devs.get(5).is_none() && devs.get(u32::MAX).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
        let e = list_cpus(&root).unwrap_err();
        assert_eq!(e.errno, libc::ENXIO);
        assert!(e.message.contains("modprobe msr"), "{}", e.message);
    }

    /// Each CPU's file decides its own layout at start (open_all's own open and fstat): a
    /// character device (here /dev/null through a link) is addressed by register, a regular
    /// file is a register store, and an msr that cannot be opened read-write refuses the start
    /// with its path.
    #[test]
    fn every_msr_file_is_checked_for_its_own_kind_at_start() {
        let dir = scratch("kinds");
        for cpu in [0, 1, 10] {
            std::fs::create_dir_all(dir.join(format!("dev/cpu/{cpu}"))).unwrap();
        }
        File::create(dir.join("dev/cpu/0/msr")).unwrap();
        std::os::unix::fs::symlink("/dev/null", dir.join("dev/cpu/1/msr")).unwrap();
        File::create(dir.join("dev/cpu/10/msr")).unwrap();
        let root = Root::new(&dir);
        let devs = MsrDevices::open_all(&root).unwrap();
        assert_eq!(devs.cpu_ids(), vec![0, 1, 10]);
        assert!(devs.get(0).unwrap().is_register_store());
        assert!(!devs.get(1).unwrap().is_register_store(), "a character device is the kernel's layout");
        assert!(devs.get(10).unwrap().is_register_store());
        std::fs::create_dir_all(dir.join("dev/cpu/2/msr")).unwrap();
        let e = MsrDevices::open_all(&root).unwrap_err();
        assert!(e.message.contains("cannot open") && e.message.contains("dev/cpu/2/msr"), "{}", e.message);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn decimal_digits_are_what_format_writes() {
        for n in [0, 1, 9, 10, 99, 100, 255, 4095, 65_536, 1_000_000_007, u32::MAX] {
            let mut out = b"x/".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x/{n}").into_bytes());
        }
    }
}
