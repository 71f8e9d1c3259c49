//! Replays the committed fuzz corpus (fuzz/corpus/TARGET/*, kept by `make fuzz`) through the
//! same harnesses the fuzz targets run, so what the fuzzer once found stays fixed.
#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

use likwid_access::fuzzing::{self, Machines};
use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no corpus for {target} in {}", dir.display());
    out
}

fn replay(target: &str, run: impl Fn(&[u8])) {
    for (name, data) in inputs(target) {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&data))).is_err() {
            panic!("fuzz/corpus/{target}/{name} fails its harness");
        }
    }
}

#[test]
fn parser_corpus_replays() {
    replay("parsers", fuzzing::parsers);
}

#[test]
fn greeting_corpus_replays() {
    replay("greeting", fuzzing::greeting);
}

#[test]
fn wire_corpus_replays_against_the_daemon_loop() {
    let dir = Scratch::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")), "fuzz-wire");
    let machines = Machines::create(&dir).unwrap();
    replay("wire", |data| fuzzing::wire_stream(&machines, data));
}

#[test]
fn session_corpus_keeps_every_bit_outside_the_write_masks() {
    let dir = Scratch::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")), "fuzz-session");
    let machines = Machines::create(&dir).unwrap();
    replay("session", |data| fuzzing::session(&machines, data));
}
