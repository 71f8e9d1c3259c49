// Gives the cdylib a versioned SONAME so `make install` can lay out the usual
// liblikwid_access.so -> .so.0 -> .so.0.1.0 chain and programs link against the ABI major.
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
}
