//! The LIKWID installations `likwid-access doctor` finds, and which `likwid-accessD` each
//! would start. A site often has several (a distribution's, modules under /opt, Spack,
//! EasyBuild); each starts its daemon on its own, so each must be pointed at ours.
//!
//! How LIKWID picks its daemon (src/configuration.c, src/access_client.c; v5.2.2, v5.5.1):
//! with no likwid.cfg, `which likwid-accessD` (the first on the user's PATH), else the path
//! compiled into the library (`PREFIX/sbin/likwid-accessD`). From 5.4 on a likwid.cfg
//! (`$LIKWID_CFG_FILE`, `PREFIX/etc/likwid.cfg`, `/etc/likwid.cfg`) is read, and then its
//! `daemon_path` decides (PATH is not searched; without `daemon_path` the compiled-in path is
//! used). 5.2 and 5.3 never read likwid.cfg: an inverted access() check skips it.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A library larger than this is not searched for its compiled-in daemon path.
const LIBRARY_LIMIT: u64 = 256 << 20;
/// Bytes that mark our daemon binary (its trace switch), so a copy or symlink counts as ours.
const OUR_MARKER: &[u8] = b"LIKWID_ACCESS_TRACE";

/// One LIKWID installation.
#[derive(Debug)]
pub struct Install {
    pub prefix: PathBuf,
    /// How it was found: `PATH`, `/usr`, `/opt/*`, `$LIKWID_HOME`, ...
    pub found_by: String,
    /// `5.5.1` from its likwid.h, else `5.N` from its library's name.
    pub version: String,
    pub minor: Option<u32>,
    /// The daemon it would start and why, or why none.
    pub daemon: Result<(PathBuf, String), String>,
}

/// Installation prefixes: from PATH, the usual places, /opt/* and /opt/*/*, and module
/// variables (`$LIKWID_HOME`, `$LIKWID_ROOT`, `$LIKWID_DIR`, `$LIKWID_PREFIX`, EasyBuild's
/// `$EBROOTLIKWID`).
fn candidates(path_var: Option<&OsString>, env: &[(String, OsString)]) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for dir in path_var.map(std::env::split_paths).into_iter().flatten() {
        if dir.join("likwid-perfctr").is_file() {
            if let Some(prefix) = dir.parent() {
                out.push((prefix.to_path_buf(), "PATH".to_string()));
            }
        }
    }
    for usual in ["/usr", "/usr/local"] {
        out.push((PathBuf::from(usual), usual.to_string()));
    }
    let subdirs = |dir: &Path| -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
            .unwrap_or_default();
        dirs.sort();
        dirs
    };
    for dir in subdirs(Path::new("/opt")) {
        out.push((dir.clone(), "/opt/*".to_string()));
        for sub in subdirs(&dir) {
            out.push((sub, "/opt/*/*".to_string()));
        }
    }
    for (name, value) in env {
        let module_var = name == "EBROOTLIKWID"
            || (name.starts_with("LIKWID")
                && !name.starts_with("LIKWID_ACCESS")
                && ["HOME", "ROOT", "DIR", "PREFIX", "BASE"].iter().any(|s| name.ends_with(s)));
        if module_var && !value.is_empty() {
            out.push((PathBuf::from(value), format!("${name}")));
        }
    }
    out
}

/// `liblikwid.so.5.N` under the prefix's library directories: (path, N).
fn library(prefix: &Path) -> Option<(PathBuf, u32)> {
    for lib in ["lib", "lib64", "lib/x86_64-linux-gnu"] {
        let Ok(dir) = std::fs::read_dir(prefix.join(lib)) else { continue };
        let mut found: Vec<(PathBuf, u32)> = dir
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let minor = name.strip_prefix("liblikwid.so.5.")?.parse().ok()?;
                Some((e.path(), minor))
            })
            .collect();
        found.sort();
        if let Some(last) = found.pop() {
            return Some(last);
        }
    }
    None
}

/// `LIKWID_VERSION "5.5.1"` from the installed likwid.h, when it holds a real version
/// (Debian's says "VERSION.RELEASE.MINORVERSION").
fn header_version(prefix: &Path) -> Option<String> {
    let text = std::fs::read_to_string(prefix.join("include/likwid.h")).ok()?;
    let line = text.lines().find(|l| l.trim_start().starts_with("#define LIKWID_VERSION"))?;
    let version = line.split('"').nth(1)?;
    version.chars().all(|c| c.is_ascii_digit() || c == '.').then(|| version.to_string())
}

/// The daemon path compiled into a LIKWID library: the string ending in `/likwid-accessD`.
pub fn compiled_daemon_path(library: &Path) -> Option<PathBuf> {
    let mut bytes = Vec::new();
    std::fs::File::open(library).ok()?.take(LIBRARY_LIMIT).read_to_end(&mut bytes).ok()?;
    compiled_path_in(&bytes)
}

fn compiled_path_in(bytes: &[u8]) -> Option<PathBuf> {
    const TAIL: &[u8] = b"/likwid-accessD\0";
    let at = bytes.windows(TAIL.len()).position(|w| w == TAIL)?;
    let start = bytes[..at].iter().rposition(|b| *b == 0).map_or(0, |p| p + 1);
    let path = &bytes[start..at + TAIL.len() - 1];
    let printable = path.iter().all(|b| b.is_ascii_graphic());
    (path.first() == Some(&b'/') && printable).then(|| PathBuf::from(String::from_utf8_lossy(path).into_owned()))
}

/// `daemon_path = X` from a likwid.cfg.
fn cfg_daemon_path(text: &str) -> Option<PathBuf> {
    text.lines().find_map(|l| {
        let (name, value) = l.split_once('=')?;
        (name.trim() == "daemon_path").then(|| PathBuf::from(value.trim()))
    })
}

fn executable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// The first executable `likwid-accessD` on PATH, as `which` finds it.
fn which_daemon(path_var: Option<&OsString>) -> Option<PathBuf> {
    path_var.map(std::env::split_paths)?.map(|d| d.join("likwid-accessD")).find(|p| p.is_file() && executable(p))
}

/// The daemon a LIKWID of minor version `minor` at `prefix` would start.
fn daemon_of(
    prefix: &Path,
    minor: u32,
    compiled: Option<PathBuf>,
    path_var: Option<&OsString>,
    cfg_env: Option<&OsString>,
) -> Result<(PathBuf, String), String> {
    let compiled = compiled.unwrap_or_else(|| prefix.join("sbin/likwid-accessD"));
    let compiled_or_none = |why: &str| {
        if executable(&compiled) {
            Ok((compiled.clone(), format!("its compiled-in path{why}")))
        } else {
            Err(format!("none: its compiled-in {} is missing{why}", compiled.display()))
        }
    };
    if minor >= 4 {
        let cfgs =
            [cfg_env.map(PathBuf::from), Some(prefix.join("etc/likwid.cfg")), Some(PathBuf::from("/etc/likwid.cfg"))];
        if let Some((cfg, text)) =
            cfgs.into_iter().flatten().find_map(|p| Some((p.clone(), std::fs::read_to_string(&p).ok()?)))
        {
            return match cfg_daemon_path(&text) {
                Some(d) if std::fs::File::open(&d).is_ok() => Ok((d, format!("daemon_path in {}", cfg.display()))),
                Some(_) => which_daemon(path_var)
                    .map(|d| (d, "first on PATH (daemon_path in likwid.cfg is unreadable)".to_string()))
                    .ok_or(())
                    .or_else(|()| compiled_or_none(" (daemon_path in likwid.cfg is unreadable)")),
                None => compiled_or_none(&format!(" ({} has no daemon_path)", cfg.display())),
            };
        }
    }
    match which_daemon(path_var) {
        Some(d) => Ok((d, "first on PATH".to_string())),
        None => compiled_or_none(""),
    }
}

/// Every LIKWID installation found, once each (by canonical prefix).
pub fn find() -> Vec<Install> {
    let path_var = std::env::var_os("PATH");
    let env: Vec<(String, OsString)> =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))).collect();
    let cfg_env = std::env::var_os("LIKWID_CFG_FILE");
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut out = Vec::new();
    for (prefix, found_by) in candidates(path_var.as_ref(), &env) {
        // One installation per likwid-perfctr file: `/bin` is often a link to `/usr/bin`.
        let Ok(perfctr) = prefix.join("bin/likwid-perfctr").canonicalize() else { continue };
        if !perfctr.is_file() || seen.contains(&perfctr) {
            continue;
        }
        let prefix = perfctr.parent().and_then(Path::parent).map_or(prefix, Path::to_path_buf);
        seen.push(perfctr);
        let lib = library(&prefix);
        let minor = lib.as_ref().map(|(_, m)| *m);
        let version =
            header_version(&prefix).or_else(|| minor.map(|m| format!("5.{m}"))).unwrap_or_else(|| "unknown".into());
        let daemon = match &lib {
            Some((lib, m)) => daemon_of(&prefix, *m, compiled_daemon_path(lib), path_var.as_ref(), cfg_env.as_ref()),
            None => Err("unknown: no liblikwid.so.5.N under its lib directories (a static build?)".into()),
        };
        out.push(Install { prefix, found_by, version, minor, daemon });
    }
    out
}

/// Whether `path` is our likwid-accessD (a copy or link of it counts).
pub fn is_ours(path: &Path, ours: &Path) -> bool {
    if let (Ok(a), Ok(b)) = (path.canonicalize(), ours.canonicalize()) {
        if a == b {
            return true;
        }
    }
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(LIBRARY_LIMIT).read_to_end(&mut bytes));
    read.is_ok() && bytes.windows(OUR_MARKER.len()).any(|w| w == OUR_MARKER)
}

/// How to make this installation start `ours`.
pub fn fix(install: &Install, ours: &Path) -> String {
    let ours = ours.display();
    let prefix = install.prefix.display();
    let sbin = install.prefix.join("sbin/likwid-accessD");
    match install.minor {
        Some(m) if m >= 4 => format!(
            "put `daemon_path = {ours}` and `daemon_mode = daemon` in {prefix}/etc/likwid.cfg (LIKWID 5.4+ reads it), \
             or replace {} by a link to {ours}",
            sbin.display()
        ),
        _ => format!(
            "put {}'s directory first on the users' PATH (module: prepend-path PATH ...), or replace {} by a link to \
             {ours} (LIKWID 5.2/5.3 ignore likwid.cfg)",
            ours,
            sbin.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_daemon_path_is_found_among_other_strings() {
        let lib = b"\x7fELF\0\0junk\0Failed to find the daemon '%s'\n\0/opt/likwid-5.5.1/sbin/likwid-accessD\0more\0";
        assert_eq!(compiled_path_in(lib), Some(PathBuf::from("/opt/likwid-5.5.1/sbin/likwid-accessD")));
        assert_eq!(compiled_path_in(b"which likwid-accessD\0"), None, "not a path");
        assert_eq!(compiled_path_in(b"\0/usr/sbin/likwid-accessD"), None, "not NUL-terminated");
        assert_eq!(compiled_path_in(b"/usr/sbin/likwid-accessD\0"), Some(PathBuf::from("/usr/sbin/likwid-accessD")));
    }

    #[test]
    fn daemon_path_is_read_from_likwid_cfg() {
        let cfg = "# site\ntopology_file = /etc/likwid_topo.cfg\ndaemon_path = /usr/local/sbin/likwid-accessD\ndaemon_mode = daemon\n";
        assert_eq!(cfg_daemon_path(cfg), Some(PathBuf::from("/usr/local/sbin/likwid-accessD")));
        assert_eq!(cfg_daemon_path("daemon_mode = daemon\n"), None);
    }

    #[test]
    fn module_variables_name_prefixes_but_ours_do_not() {
        let env = [
            ("LIKWID_HOME".to_string(), OsString::from("/apps/likwid/5.4.1")),
            ("EBROOTLIKWID".to_string(), OsString::from("/eb/software/likwid/5.3.0")),
            ("LIKWID_ACCESS_ROOT".to_string(), OsString::from("/tmp/sim")),
            ("LIKWID_FORCE".to_string(), OsString::from("1")),
        ];
        let found: Vec<(PathBuf, String)> =
            candidates(None, &env).into_iter().filter(|(_, by)| by.starts_with('$')).collect();
        assert_eq!(
            found,
            vec![
                (PathBuf::from("/apps/likwid/5.4.1"), "$LIKWID_HOME".to_string()),
                (PathBuf::from("/eb/software/likwid/5.3.0"), "$EBROOTLIKWID".to_string()),
            ]
        );
    }
}
