//! Every register access Debian's LIKWID made on our daemon (tests/likwid/traces/CPU/GROUP.trace,
//! recorded by `tests/likwid/harness.sh --record`) is one the built-in policy of that CPU allows,
//! and every traced write stays inside the register's write mask.
//!
//! Trace lines: `OP CPU DEVICE REG DATA CODE` (OP read/write/check; REG, DATA hex; CODE the
//! LIKWID reply code). Only MSR requests (device 0) are checked: PCI devices have no policy yet.

use likwid_access::testing::{CpuModel, Policy, WriteRule};
use std::path::{Path, PathBuf};

fn hex(word: &str) -> Option<u64> {
    u64::from_str_radix(word.strip_prefix("0x")?, 16).ok()
}

/// The problems of one trace file, each naming the file, line and register.
fn check_trace(policy: &Policy, path: &Path, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let content = line.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let at = format!("{}:{line_no}", path.display());
        let words: Vec<&str> = content.split_whitespace().collect();
        let [op, _cpu, device, reg, data, code] = words[..] else {
            problems.push(format!("{at}: not `OP CPU DEVICE REG DATA CODE`: {content}"));
            continue;
        };
        let (Some(reg), Some(data)) = (hex(reg).and_then(|r| u32::try_from(r).ok()), hex(data)) else {
            problems.push(format!("{at}: register or data is not 0x hex: {content}"));
            continue;
        };
        if device != "0" || op == "check" {
            continue;
        }
        if code != "NOERROR" {
            problems.push(format!("{at}: {op} of register {reg:#x} was answered {code}: LIKWID needs it"));
            continue;
        }
        match op {
            "read" if !policy.may_read(reg) => {
                problems.push(format!("{at}: read of register {reg:#x} is not allowed by {}", policy.source))
            }
            "read" => {}
            "write" => match policy.write_rule(reg) {
                WriteRule::Masked(mask) if data & !mask != 0 => problems.push(format!(
                    "{at}: write of {data:#x} to register {reg:#x} sets bits {:#x} outside its write mask {mask:#x}",
                    data & !mask
                )),
                WriteRule::Masked(_) => {}
                // Read-only: the daemon accepted it (NOERROR), so it rewrote the current value.
                WriteRule::Unchanged => {}
                WriteRule::Denied => problems
                    .push(format!("{at}: write of {data:#x} to register {reg:#x} is not allowed by {}", policy.source)),
            },
            other => problems.push(format!("{at}: unknown operation `{other}`")),
        }
    }
    problems
}

fn trace_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/likwid/traces");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_traced_likwid_access_is_allowed_and_within_its_write_mask() {
    let dirs = trace_dirs();
    assert!(!dirs.is_empty(), "no traces under tests/likwid/traces");
    let mut problems = Vec::new();
    let mut files = 0;
    for dir in dirs {
        let cpu = dir.file_name().unwrap().to_string_lossy().into_owned();
        let model =
            CpuModel::by_name(&cpu).unwrap_or_else(|| panic!("{}: no built-in table named `{cpu}`", dir.display()));
        let policy = Policy::builtin(model);
        let mut traces: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "trace"))
            .collect();
        traces.sort();
        assert!(!traces.is_empty(), "{}: no .trace files", dir.display());
        for path in traces {
            let text = std::fs::read_to_string(&path).unwrap();
            problems.extend(check_trace(&policy, &path, &text));
            files += 1;
        }
    }
    assert!(problems.is_empty(), "{} problem(s) in {files} trace files:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn the_trace_check_catches_denials_and_bits_outside_the_mask() {
    let policy = Policy::new("test table", "0x186 0xFF\n0x3F1 0x0\n").unwrap();
    let path = Path::new("t.trace");
    let good = "# comment\nwrite 0 0 0x186 0x3c NOERROR\nwrite 0 0 0x3f1 0x0 NOERROR\nread 1 0 0x186 0x0 NOERROR\n\
                check 0 5 0x0 0x0 NODEV\nread 0 7 0x999 0x0 NODEV\n";
    assert_eq!(check_trace(&policy, path, good), Vec::<String>::new());
    let bad = "write 0 0 0x186 0x43003c NOERROR\nread 0 0 0x187 0x0 NOERROR\nread 0 0 0x38f 0x0 RESTREG\nwrite 0 0 0x10 0x0 NOERROR\n";
    let problems = check_trace(&policy, path, bad);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(problems[0].starts_with("t.trace:1:") && problems[0].contains("0x186") && problems[0].contains("0x430000"));
    assert!(problems[1].starts_with("t.trace:2:") && problems[1].contains("0x187"));
    assert!(problems[2].starts_with("t.trace:3:") && problems[2].contains("RESTREG"));
    assert!(problems[3].starts_with("t.trace:4:") && problems[3].contains("0x10"));
}
