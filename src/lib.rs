//! likwid-access: LIKWID's access layer in Rust. A C library that launches and proxies to a
//! hardened, LIKWID 5 wire-compatible `likwid-accessD`, and the daemon itself.
#![deny(unsafe_code)]

pub mod capi;
pub mod client;
pub mod daemon;
pub mod device;
pub mod engine;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod lock;
pub mod policy;
pub mod root;
pub mod service;
pub mod sim;
pub mod site;
pub mod sys;
pub mod tool;
pub mod wire;
