//! The one way the generated C-facing files are made, shared by `make header` and the drift
//! test: the PciDeviceIndex constants from LIKWID 5.2's numbering table, then the header.
use std::path::Path;

pub const PCI_INDEX_RS: &str = "src/capi/pci_index.rs";
pub const HEADER: &str = "include/likwid_access.h";

/// `src/capi/pci_index.rs`: one constant per entry of `src/policy/pci/index-5.2.txt`.
pub fn pci_index_source(root: &Path) -> String {
    let table = std::fs::read_to_string(root.join("src/policy/pci/index-5.2.txt")).expect("index-5.2.txt");
    let mut out = String::from(
        "//! LIKWID 5.2's PciDeviceIndex numbering (Debian's LIKWID), the one our header and library\n\
         //! use. Generated from src/policy/pci/index-5.2.txt by `make header`; do not edit.\n\n\
         use super::PciDeviceIndex;\n",
    );
    for line in table.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let (Some(n), Some(name)) = (words.next(), words.next()) else { continue };
        if name != "MSR_DEV" {
            out.push_str(&format!("\n/// PciDeviceIndex {n} (LIKWID 5.2).\npub const {name}: PciDeviceIndex = {n};\n"));
        }
    }
    out
}

pub fn generate(root: &Path) -> String {
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/capi/mod.rs"))
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut out);
    String::from_utf8(out).expect("header is UTF-8")
}
