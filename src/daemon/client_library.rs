//! Which `PciDeviceIndex` numbering a LIKWID client speaks, learnt from the client itself.
//!
//! The numbering is a property of the `liblikwid.so.5.N` the client loaded (LIKWID's
//! `src/includes/pci_types.h` differs between 5.2.x, 5.3.0 and 5.4.0+; v5.4.0 through v5.5.1
//! are identical), and several LIKWID versions are often installed on one node, each starting
//! whichever `likwid-accessD` is first on PATH. So for each accepted connection the daemon
//! reads `/proc/<peer pid>/maps` (pid from SO_PEERCRED) and looks for that library: LIKWID's
//! Makefile installs it under its soname `liblikwid.so.5.N`, and its Lua tools load it too.
//! The relay (`relay.rs`) does the same for the service, which keeps no privilege to read
//! another user's maps, and sends the verdict in its hand-over hello.
//! When the client does not tell (a static build, an unknown version, a process that is gone),
//! the site file and then the installed libraries decide (`site::likwid_client_numbering`).
//!
//! The maps file is the client's and so untrusted: a user can map any file under any name. That
//! is harmless here: the numbering only names devices, and every device and register is still
//! checked by its type's rules. The parse is defensive all the same (bounded read, any bytes,
//! no panics), and a process that maps two different LIKWID versions gets no verdict.
//!
//! Not used: guessing from the first device index the client sends (>= 317 only exists in
//! 5.4+). LIKWID's CHECKs of low indices come first and would already have been answered in a
//! wrong numbering by then, so the guess cannot be made before it matters.

use crate::policy::pci::Numbering;
use std::io::Read;

/// A maps file longer than this is read only this far (a huge process; LIKWID's libraries are
/// mapped early enough in practice, and missing them only means the fallback decides).
const MAPS_LIMIT: u64 = 8 << 20;

/// The numbering of a library file name `liblikwid.so.5.N` (or `.5.N.PATCH...`): Some(Ok)
/// for a LIKWID release we know, Some(Err(minor)) for another 5.N, None for another file.
fn numbering_of_name(name: &[u8]) -> Option<Result<Numbering, String>> {
    let rest = name.strip_prefix(b"liblikwid.so.5.")?;
    let mut parts = rest.split(|&b| b == b'.');
    let minor = parts.next()?;
    let numeric = |p: &[u8]| !p.is_empty() && p.len() <= 4 && p.iter().all(u8::is_ascii_digit);
    if !numeric(minor) || !parts.all(numeric) {
        return None;
    }
    let minor = std::str::from_utf8(minor).ok()?;
    Some(match minor.parse::<u32>().ok()? {
        2 => Ok(Numbering::Likwid52),
        3 => Ok(Numbering::Likwid53),
        4 | 5 => Ok(Numbering::Likwid54),
        _ => Err(format!("5.{minor}")),
    })
}

/// The path of one maps line (`ADDR PERMS OFFSET DEV INODE PATH`), without the kernel's
/// ` (deleted)` suffix; None for anonymous mappings and pseudo-paths like `[heap]`.
fn path_of_line(line: &[u8]) -> Option<&[u8]> {
    let mut rest = line;
    for _ in 0..5 {
        let start = rest.iter().position(|b| *b != b' ')?;
        rest = &rest[start..];
        let end = rest.iter().position(|b| *b == b' ')?;
        rest = &rest[end..];
    }
    let start = rest.iter().position(|b| *b != b' ')?;
    let path = &rest[start..];
    let path = path.strip_suffix(b" (deleted)").unwrap_or(path);
    path.starts_with(b"/").then_some(path)
}

/// What a client's maps say about its numbering.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// One LIKWID library version is mapped (its path, for the log).
    Mapped(Numbering, String),
    /// No `liblikwid.so.5.N` is mapped.
    NoLibrary,
    /// A LIKWID library whose numbering we do not know, or two different ones.
    Unclear(String),
}

/// Reads the numbering from the text of `/proc/<pid>/maps` (any bytes).
pub fn numbering_in_maps(maps: &[u8]) -> Verdict {
    let mut found: Vec<(Result<Numbering, String>, String)> = Vec::new();
    for line in maps.split(|&b| b == b'\n') {
        let Some(path) = path_of_line(line) else { continue };
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        let Some(numbering) = numbering_of_name(name) else { continue };
        if !found.iter().any(|(n, _)| *n == numbering) {
            found.push((numbering, String::from_utf8_lossy(path).into_owned()));
        }
    }
    match found.as_slice() {
        [] => Verdict::NoLibrary,
        [(Ok(n), path)] => Verdict::Mapped(*n, path.clone()),
        [(Err(version), path)] => Verdict::Unclear(format!("{path} is LIKWID {version}, whose numbering is unknown")),
        several => Verdict::Unclear(format!(
            "it maps several LIKWID libraries ({})",
            several.iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Reads at most `MAPS_LIMIT` bytes of `/proc/<pid>/maps`.
fn read_maps(pid: i32) -> std::io::Result<Vec<u8>> {
    if pid <= 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("no pid ({pid})")));
    }
    let file = std::fs::File::open(format!("/proc/{pid}/maps"))?;
    let mut maps = Vec::new();
    file.take(MAPS_LIMIT).read_to_end(&mut maps)?;
    Ok(maps)
}

/// The numbering the mapped library of client `pid` names, with its path; else why not.
/// Reading another process's maps needs PTRACE_MODE_READ (fs/proc/base.c): the same uid as a
/// dumpable client, as the relay and the unprivileged daemon are, or CAP_SYS_PTRACE.
pub fn numbering_from_maps(pid: i32) -> Result<(Numbering, String), String> {
    match read_maps(pid).map(|maps| numbering_in_maps(&maps)) {
        Ok(Verdict::Mapped(n, path)) => Ok((n, path)),
        Ok(Verdict::NoLibrary) => Err("it maps no liblikwid.so.5.N (a static build?)".to_string()),
        Ok(Verdict::Unclear(why)) => Err(why),
        Err(e) => Err(format!("cannot read /proc/{pid}/maps: {e}")),
    }
}

/// The numbering for the client `pid`: from its mapped library, else `fallback` (the site
/// file's or the installed library's, with what decided it). Logs which source decided.
pub fn numbering_for_client(pid: i32, fallback: &(Numbering, String)) -> Numbering {
    let why_not = match numbering_from_maps(pid) {
        Ok((n, path)) => {
            log::info!("client pid {pid} speaks LIKWID {} PCI device numbering: it has {path} mapped", n.label());
            return n;
        }
        Err(why) => why,
    };
    let (n, source) = fallback;
    log::info!("client pid {pid} gets LIKWID {} PCI device numbering from {source}: {why_not}", n.label());
    *n
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "7f1c2a000000-7f1c2a200000 r-xp 00000000 08:01 1234567";

    fn maps_with(paths: &[&str]) -> Vec<u8> {
        let mut text = String::from("55d0c0000000-55d0c0021000 r--p 00000000 08:01 42 /usr/bin/lua5.3\n");
        text += "55d0c1000000-55d0c1200000 rw-p 00000000 00:00 0                          [heap]\n";
        text += "7f1c29000000-7f1c29100000 rw-p 00000000 00:00 0 \n";
        for p in paths {
            text += &format!("{LINE}                    {p}\n");
        }
        text.into_bytes()
    }

    #[test]
    fn each_release_library_names_its_numbering() {
        for (path, want) in [
            ("/usr/lib/x86_64-linux-gnu/liblikwid.so.5.2", Numbering::Likwid52),
            ("/opt/likwid-5.3.0/lib/liblikwid.so.5.3", Numbering::Likwid53),
            ("/opt/likwid/5.4.1/lib/liblikwid.so.5.4", Numbering::Likwid54),
            ("/opt/likwid-5.5.1/lib/liblikwid.so.5.5", Numbering::Likwid54),
            ("/spack/opt/likwid-5.5.1-abc/lib/liblikwid.so.5.5.1", Numbering::Likwid54),
        ] {
            let maps = maps_with(&[path, "/lib/x86_64-linux-gnu/libc.so.6"]);
            assert_eq!(numbering_in_maps(&maps), Verdict::Mapped(want, path.to_string()), "{path}");
        }
    }

    #[test]
    fn a_replaced_library_and_a_path_with_spaces_still_count() {
        let maps = maps_with(&["/home/a user/likwid/lib/liblikwid.so.5.3 (deleted)"]);
        assert_eq!(
            numbering_in_maps(&maps),
            Verdict::Mapped(Numbering::Likwid53, "/home/a user/likwid/lib/liblikwid.so.5.3".into())
        );
    }

    #[test]
    fn other_libraries_and_lookalikes_are_not_likwid() {
        for path in [
            "/opt/likwid-5.5.1/lib/liblikwid-lua.so.5.5",
            "/opt/likwid-5.5.1/lib/liblikwidpin.so.5.5",
            "/opt/likwid-5.5.1/lib/liblikwid.so.5",
            "/opt/likwid-5.5.1/lib/liblikwid.so",
            "/tmp/liblikwid.so.5.5x",
            "/tmp/liblikwid.so.5.",
            "/tmp/liblikwid.so.5.5.",
            "/tmp/xliblikwid.so.5.5",
            "/tmp/liblikwid.so.5.99999999999999999999",
            "[liblikwid.so.5.5]",
        ] {
            assert_eq!(numbering_in_maps(&maps_with(&[path])), Verdict::NoLibrary, "{path}");
        }
        assert_eq!(numbering_in_maps(b""), Verdict::NoLibrary);
    }

    #[test]
    fn unknown_and_conflicting_versions_give_no_verdict() {
        let v = numbering_in_maps(&maps_with(&["/tmp/liblikwid.so.5.9"]));
        assert!(matches!(&v, Verdict::Unclear(why) if why.contains("LIKWID 5.9")), "{v:?}");
        let v = numbering_in_maps(&maps_with(&["/tmp/liblikwid.so.5.1"]));
        assert!(matches!(&v, Verdict::Unclear(_)), "{v:?}");
        let v = numbering_in_maps(&maps_with(&["/a/liblikwid.so.5.2", "/b/liblikwid.so.5.5"]));
        assert!(matches!(&v, Verdict::Unclear(why) if why.contains("several")), "{v:?}");
        // The same version mapped twice (text and data segments) is one library.
        let v = numbering_in_maps(&maps_with(&["/a/liblikwid.so.5.4", "/a/liblikwid.so.5.4", "/b/liblikwid.so.5.5"]));
        assert_eq!(v, Verdict::Mapped(Numbering::Likwid54, "/a/liblikwid.so.5.4".into()));
    }

    #[test]
    fn garbage_never_panics() {
        let mut junk: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        junk.extend_from_slice(b"\n \n     \n1 2 3 4 5\n1 2 3 4 5 /\n1 2 3 4 5 liblikwid.so.5.5\n");
        junk.extend_from_slice(b"1 2 3 4 5 /\xff\xfe/liblikwid.so.5.2\n");
        assert_eq!(
            numbering_in_maps(&junk),
            Verdict::Mapped(Numbering::Likwid52, "/\u{fffd}\u{fffd}/liblikwid.so.5.2".into())
        );
        let mut cut = maps_with(&["/opt/l/liblikwid.so.5.5"]);
        cut.truncate(cut.len() - 6);
        assert_eq!(numbering_in_maps(&cut), Verdict::NoLibrary, "a line cut short names another file");
    }

    #[test]
    fn a_process_that_is_gone_falls_back() {
        let fallback = (Numbering::Likwid53, "test".to_string());
        assert_eq!(numbering_for_client(0, &fallback), Numbering::Likwid53);
        assert_eq!(numbering_for_client(-1, &fallback), Numbering::Likwid53);
        assert_eq!(numbering_for_client(i32::MAX, &fallback), Numbering::Likwid53);
    }

    #[test]
    fn this_process_maps_no_likwid() {
        let fallback = (Numbering::Likwid52, "test".to_string());
        let maps = read_maps(std::process::id() as i32).expect("own maps");
        assert!(!maps.is_empty());
        assert_eq!(numbering_in_maps(&maps), Verdict::NoLibrary);
        assert_eq!(numbering_for_client(std::process::id() as i32, &fallback), Numbering::Likwid52);
    }
}
