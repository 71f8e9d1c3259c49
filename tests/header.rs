//! The committed generated files must be exactly what `make header` makes: the PciDeviceIndex
//! constants from the 5.2 numbering table, and the header from src/capi (pinned cbindgen).
#[path = "support/header.rs"]
mod support;

fn committed(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join(path)).unwrap_or_default()
}

#[test]
fn committed_pci_index_constants_match_the_numbering_table() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        committed(support::PCI_INDEX_RS) == support::pci_index_source(root),
        "src/capi/pci_index.rs is out of date with src/policy/pci/index-5.2.txt: run `make header` and commit it"
    );
}

#[test]
fn committed_header_matches_generated() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        committed(support::HEADER) == support::generate(root),
        "include/likwid_access.h is out of date with src/capi: run `make header` and commit it"
    );
}
