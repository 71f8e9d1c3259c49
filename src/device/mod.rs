//! Register access behind one small trait. Knows nothing about clients or policy.

pub mod discovery;
mod msr;
pub mod pci;

pub use msr::{list_cpus, MsrDevices, MsrFile};

use std::io;

/// A device that holds 64-bit registers.
pub trait RegisterDevice {
    fn read(&self, reg: u32) -> io::Result<u64>;
    fn write(&self, reg: u32, value: u64) -> io::Result<()>;
}
