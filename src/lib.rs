//! likwid-access: LIKWID's access layer in Rust. A C library that launches and proxies to a
//! hardened, LIKWID 5 wire-compatible `likwid-accessD`, and the daemon itself.
//!
//! The crate's surface is the C ABI (`capi`, whose `#[no_mangle]` functions and constants
//! make include/likwid_access.h), the two binaries' mains, and `testing`/`fuzzing` for the
//! integration tests and fuzz targets. Everything else is private to the crate, so the
//! compiler reports any item nobody uses.
#![deny(unsafe_code)]

pub mod capi;
mod client;
mod daemon;
mod device;
mod engine;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod lock;
mod policy;
mod root;
mod service;
mod sim;
mod site;
mod sys;
mod tool;
mod wire;

/// The entry of `likwid-accessD` (src/bin/likwid-accessD.rs): its exit status.
pub use daemon::entry as daemon_entry;
/// The main of `likwid-access` (src/bin/likwid-access.rs).
pub use tool::main as tool_main;

/// What the integration tests in tests/ reach inside the crate. Not an API.
#[doc(hidden)]
pub mod testing {
    pub use crate::daemon::SERVICE_SOCKET_ENV;
    pub use crate::engine::{policy_for, Engine};
    pub use crate::error::AccessError;
    pub use crate::policy::pci::Numbering;
    pub use crate::policy::{parse, CpuModel, Policy, WriteRule};
    pub use crate::root::Root;
    pub use crate::sim::{
        create, create_sockets,
        discovery::{layout, table_address, GLOBAL_CTL},
    };

    /// The LIKWID 5 record and our channel's extensions.
    pub mod wire {
        pub use crate::wire::*;
    }

    /// Uncore discovery tables (Intel SPR and later).
    pub mod discovery {
        pub use crate::policy::discovery::*;
    }
}
