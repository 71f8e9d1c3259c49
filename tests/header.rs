//! The committed header must be exactly what the pinned cbindgen generates from src/capi.
#[path = "support/header.rs"]
mod support;

#[test]
fn committed_header_matches_generated() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated = support::generate(root);
    let committed = std::fs::read_to_string(root.join("include/likwid_access.h")).unwrap_or_default();
    assert!(
        committed == generated,
        "include/likwid_access.h is out of date with src/capi: run `make header` and commit it"
    );
}
