//! Writes src/capi/pci_index.rs and include/likwid_access.h with the pinned cbindgen
//! (`make header`).
fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let pci = likwid_access_header::pci_index_source(root);
    std::fs::write(root.join(likwid_access_header::PCI_INDEX_RS), pci).expect("write src/capi/pci_index.rs");
    let header = likwid_access_header::generate(root);
    std::fs::write(root.join(likwid_access_header::HEADER), header).expect("write include/likwid_access.h");
}

#[path = "../tests/support/header.rs"]
mod likwid_access_header;
