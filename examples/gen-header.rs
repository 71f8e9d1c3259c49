//! Writes include/likwid_access.h with the pinned cbindgen (`make header`).
fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = likwid_access_header::generate(root);
    std::fs::write(root.join("include/likwid_access.h"), header).expect("write include/likwid_access.h");
}

#[path = "../tests/support/header.rs"]
mod likwid_access_header;
