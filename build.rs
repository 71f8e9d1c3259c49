// Gives the cdylib a versioned SONAME so `make install` can lay out the usual
// liblikwid_access.so -> .so.0 -> .so.0.1.0 chain and programs link against the ABI major.
// Parses the built-in policy tables with the crate's own parser (src/policy/rules.rs, the same
// file the site allowlist goes through), so the daemon does not parse them at every start.
use std::fmt::Write as _;
use std::path::Path;

#[allow(dead_code)]
#[path = "src/policy/pci/parse.rs"]
mod pci_parse;
#[allow(dead_code)]
#[path = "src/policy/rules.rs"]
mod rules;
// `pci_parse` names the error type as its parent's (`super::ParseError`), as in the crate.
use rules::ParseError;

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,liblikwid_access.so.{major}");
    println!("cargo:rerun-if-changed=build.rs");
    // Where `make install` puts the daemon; the library launches it from there unless
    // LIKWID_ACCESSD overrides it (outside secure-exec only).
    println!("cargo:rerun-if-env-changed=LIKWID_ACCESS_DAEMON_PATH");
    let daemon =
        std::env::var("LIKWID_ACCESS_DAEMON_PATH").unwrap_or_else(|_| "/usr/local/sbin/likwid-accessD".to_string());
    println!("cargo:rustc-env=LIKWID_ACCESS_DAEMON_PATH={daemon}");
    daemon_layout();
    builtin_tables();
    builtin_pci_tables();
}

/// The daemon's memory (issue 14): the functions it runs side by side at the end of its code
/// (src/bin/likwid-accessD.ld, made by bench/daemon-layout.sh: why is there), and its relative
/// relocations packed (DT_RELR, glibc >= 2.36), so the loader reads 3 kB of them instead of 46 kB.
/// Still PIE with full RELRO. The daemon's link only; the library is loaded by applications.
fn daemon_layout() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin/likwid-accessD.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg-bin=likwid-accessD=-Wl,-T,{}", script.display());
    println!("cargo:rustc-link-arg-bin=likwid-accessD=-Wl,-z,pack-relative-relocs");
    daemon_unwinder();
}

/// The daemon's unwinder linked in from libgcc_eh.a, as `gcc -static-libgcc` does, instead of
/// loading libgcc_s.so.1 at every start (issue 14: its open, four mmaps, relocation and symbol
/// scope cost ~25 k instructions, 9 system calls and 7 page faults of the 0.4 M / 60 / 90 from
/// exec to first reply). rustc asks for `-lgcc_s` itself; a directory searched before the
/// system's (`-L` applies to every `-l` whatever its place) holds `libgcc_s.a`, a link to
/// libgcc_eh.a, so the link takes the archive. Panics still unwind to `daemon::entry`'s
/// catch_unwind (tests/daemon.rs `a_panic_unwinds_to_exit_status_101`). glibc stays shared.
/// Without libgcc_eh.a (another toolchain) the daemon keeps libgcc_s.so.1.
fn daemon_unwinder() {
    let found = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| std::path::PathBuf::from(s.trim()))
        .filter(|p| p.is_absolute() && p.is_file());
    let Some(archive) = found else {
        println!("cargo:warning=no libgcc_eh.a: likwid-accessD loads libgcc_s.so.1 at start");
        return;
    };
    let dir = Path::new(&std::env::var("OUT_DIR").unwrap()).join("daemon-unwinder");
    std::fs::create_dir_all(&dir).expect("create daemon-unwinder");
    let link = dir.join("libgcc_s.a");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&archive, &link).expect("link libgcc_s.a to libgcc_eh.a");
    println!("cargo:rerun-if-env-changed=CC");
    println!("cargo:rustc-link-arg-bin=likwid-accessD=-L{}", dir.display());
}

/// `$OUT_DIR/builtin_tables.rs`: a `static NAME: &[Rule]` for every `src/policy/tables/name.txt`
/// and `fn parsed(name) -> Option<&'static [Rule]>`. A table that does not parse fails the build with its line.
fn builtin_tables() {
    println!("cargo:rerun-if-changed=src/policy/rules.rs");
    println!("cargo:rerun-if-changed=src/policy/tables");
    let dir = Path::new("src/policy/tables");
    let mut tables: Vec<_> = std::fs::read_dir(dir)
        .expect("src/policy/tables")
        .map(|e| e.expect("table directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    tables.sort();
    let (mut statics, mut arms) = (String::new(), String::new());
    for path in tables {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_stem().and_then(|s| s.to_str()).expect("table name");
        let text = std::fs::read_to_string(&path).expect("table text");
        let rules = rules::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let upper = name.to_uppercase();
        writeln!(statics, "pub(super) static {upper}: &[Rule] = &[").unwrap();
        for r in rules {
            writeln!(
                statics,
                "    Rule {{ first: {:#x}, last: {:#x}, write_mask: {:#x} }},",
                r.first, r.last, r.write_mask
            )
            .unwrap();
        }
        statics.push_str("];\n");
        writeln!(arms, "        {name:?} => Some({upper}),").unwrap();
    }
    let code = format!(
        "{statics}\npub(super) fn parsed(name: &str) -> Option<&'static [Rule]> {{\n    match name {{\n{arms}        _ => None,\n    }}\n}}\n"
    );
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("builtin_tables.rs");
    std::fs::write(out, code).expect("write builtin_tables.rs");
}

/// `$OUT_DIR/builtin_pci.rs`: a static per PCI table of `src/policy/pci` (not the discovery
/// tables): `INDEX_5_2: IndexTable` for `index-5.2.txt`, `DEVICES_SKX: &[DeviceEntry]` for
/// `devices-skx.txt`, `ALLOW_SKX: &[PciRule]` for `allow-skx.txt`, parsed by `pci/parse.rs`. A
/// table that does not parse fails the build with its line.
fn builtin_pci_tables() {
    println!("cargo:rerun-if-changed=src/policy/pci/parse.rs");
    println!("cargo:rerun-if-changed=src/policy/pci");
    let mut tables: Vec<_> = std::fs::read_dir("src/policy/pci")
        .expect("src/policy/pci")
        .map(|e| e.expect("table directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    tables.sort();
    let mut code = String::new();
    for path in tables {
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("table name");
        let Some((what, _)) = stem.split_once('-') else { continue };
        if !matches!(what, "index" | "devices" | "allow") {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        let text = std::fs::read_to_string(&path).expect("table text");
        let fail = |e: ParseError| -> ! { panic!("{}: {e}", path.display()) };
        let upper = stem.to_uppercase().replace(['-', '.'], "_");
        match what {
            "index" => {
                // The names in one string and each entry's number with its name's end in it: no
                // pointer per entry, so the 871 entries are read-only data the loader never
                // relocates (as `&str`s they were 21 kB the daemon dirtied at every start).
                let numbering = pci_parse::parse_numbering(&text).unwrap_or_else(|e| fail(e));
                let names: String = numbering.iter().map(|(_, name)| *name).collect();
                let mut end = 0;
                writeln!(code, "pub(super) static {upper}: IndexTable = IndexTable {{\n    names: {names:?},").unwrap();
                code.push_str("    entries: &[\n");
                for (n, name) in &numbering {
                    end += name.len();
                    let end = u16::try_from(end).expect("a numbering's names fit 64 kB");
                    writeln!(code, "        ({n}, {end}),").unwrap();
                }
                code.push_str("    ],\n};\n");
                continue;
            }
            "devices" => {
                writeln!(code, "pub(super) static {upper}: &[DeviceEntry<'static>] = &[").unwrap();
                for d in pci_parse::parse_devices(&text).unwrap_or_else(|e| fail(e)) {
                    writeln!(
                        code,
                        "    DeviceEntry {{ name: {:?}, kind: {:?}, dev: {:#x}, func: {:#x}, vendor: {:#x}, device: {:#x} }},",
                        d.name, d.kind, d.dev, d.func, d.vendor, d.device
                    )
                    .unwrap();
                }
            }
            _ => {
                writeln!(code, "pub(super) static {upper}: &[PciRule<'static>] = &[").unwrap();
                for r in pci_parse::parse_rules(&text).unwrap_or_else(|e| fail(e)) {
                    writeln!(
                        code,
                        "    PciRule {{ kind: {:?}, first: {:#x}, last: {:#x}, write_mask: {:#x}, width: {} }},",
                        r.kind, r.first, r.last, r.write_mask, r.width
                    )
                    .unwrap();
                }
            }
        }
        code.push_str("];\n");
    }
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("builtin_pci.rs");
    std::fs::write(out, code).expect("write builtin_pci.rs");
}
