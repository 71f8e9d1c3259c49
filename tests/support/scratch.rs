//! A test's temporary directory: removed when dropped, also when the test panics (tempfile).
#![allow(dead_code)]

use std::path::Path;

pub struct Scratch(tempfile::TempDir);

impl Scratch {
    /// A new empty directory under the system's temporary directory, named `likwid-PREFIX-...`.
    pub fn new(prefix: &str) -> Scratch {
        Scratch(tempfile::Builder::new().prefix(&format!("likwid-{prefix}-")).tempdir().expect("temporary directory"))
    }

    /// The same under `parent`.
    pub fn new_in(parent: &Path, prefix: &str) -> Scratch {
        std::fs::create_dir_all(parent).expect("parent of the temporary directory");
        Scratch(
            tempfile::Builder::new()
                .prefix(&format!("likwid-{prefix}-"))
                .tempdir_in(parent)
                .expect("temporary directory"),
        )
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<std::ffi::OsStr> for Scratch {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.path().as_os_str()
    }
}
