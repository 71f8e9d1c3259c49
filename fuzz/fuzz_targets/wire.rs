#![no_main]
use likwid_access::fuzzing::Machines;
use std::sync::OnceLock;

/// Simulated machines in the directory make fuzz names (LIKWID_FUZZ_DIR), made once per run.
fn machines() -> &'static Machines {
    static MACHINES: OnceLock<Machines> = OnceLock::new();
    MACHINES.get_or_init(|| {
        let dir = std::env::var_os("LIKWID_FUZZ_DIR").expect("LIKWID_FUZZ_DIR: a scratch directory (make fuzz sets it)");
        Machines::create(std::path::Path::new(&dir)).expect("simulated machines")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| likwid_access::fuzzing::wire_stream(machines(), data));
