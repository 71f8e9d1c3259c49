//! The C ABI: LIKWID 5's HPM functions. Each export checks its pointers, runs its body inside a
//! panic boundary, converts and delegates to `client`. Nothing else lives here.
#![allow(unsafe_code)]
// cbindgen reads these names; they are LIKWID's.
#![allow(non_snake_case)]

use crate::client::{self, Mode};
use crate::error::AccessError;
use crate::wire::{DeviceIndex, HwThread};
use last_error::{fail, record, remember};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Access mode, as LIKWID's `AccessMode` (an int in C).
pub type AccessMode = i32;
/// Use the perf_event interface (not provided by this library).
pub const ACCESSMODE_PERF: AccessMode = -1;
/// Access the device files in-process (the process needs the privileges itself).
pub const ACCESSMODE_DIRECT: AccessMode = 0;
/// Access through likwid-accessD (the default).
pub const ACCESSMODE_DAEMON: AccessMode = 1;

/// Device index, as LIKWID's `PciDeviceIndex` (an int in C), in LIKWID 5.2's numbering: MSR_DEV
/// for a hardware thread's MSRs, the PCI_* constants for uncore devices of its socket.
pub type PciDeviceIndex = i32;
/// The model-specific registers of a hardware thread.
pub const MSR_DEV: PciDeviceIndex = 0;

/// Runs `body`; a panic becomes `on_panic` instead of unwinding into C.
fn guard<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
}

fn status(result: Result<(), AccessError>) -> i32 {
    result.map_or_else(|e| fail(&e), |()| 0)
}

/// Selects how later HPMinit/HPMaddThread reach the registers: ACCESSMODE_DAEMON (default) or
/// ACCESSMODE_DIRECT. Other values change nothing; HPMlastError says why.
#[no_mangle]
pub extern "C" fn HPMmode(mode: i32) {
    guard((), || match mode {
        ACCESSMODE_DIRECT => client::set_mode(Mode::Direct),
        ACCESSMODE_DAEMON => client::set_mode(Mode::Daemon),
        other => record(format!("HPMmode({other}): only ACCESSMODE_DIRECT (0) and ACCESSMODE_DAEMON (1) are provided")),
    })
}

/// Initialises the access layer. Returns 0.
#[no_mangle]
pub extern "C" fn HPMinit() -> i32 {
    guard(-libc::EFAULT, || {
        client::init();
        0
    })
}

/// 1 between HPMinit and HPMfinalize, else 0.
#[no_mangle]
pub extern "C" fn HPMinitialized() -> i32 {
    guard(0, || i32::from(client::initialized()))
}

/// Makes `cpu_id` accessible. The first call starts likwid-accessD (daemon mode) or opens the
/// device files (direct mode). 0, -ERANGE for a cpu not on the machine, -ENOLCK when the lock
/// file is held by another user, -ENOTSUP for an unsupported CPU, -ENXIO without msr device
/// files, -EACCES without privileges, -ENOENT when the daemon is missing; a message on stderr
/// says why.
#[no_mangle]
pub extern "C" fn HPMaddThread(cpu_id: u32) -> i32 {
    guard(-libc::EFAULT, || status(client::add_thread(HwThread(cpu_id))))
}

/// Ends the session: the daemon gets EXIT and is reaped. Registers keep their values.
#[no_mangle]
pub extern "C" fn HPMfinalize() {
    guard((), client::finalize)
}

/// Reads register `reg` of device `dev` on `cpu_id` into `*data`. 0, or -EFAULT (NULL data or
/// bad device), -ERANGE (cpu not on the machine), -ENODEV (cpu not added), -EPERM (policy),
/// -ENOLCK (lock file), -EIO (access failed), -ENOTCONN (daemon gone).
///
/// # Safety
/// `data` must be NULL or point to writable memory for one uint64_t.
#[no_mangle]
pub unsafe extern "C" fn HPMread(cpu_id: u32, dev: PciDeviceIndex, reg: u32, data: *mut u64) -> i32 {
    guard(-libc::EFAULT, || {
        if data.is_null() {
            return -libc::EFAULT;
        }
        match client::read(HwThread(cpu_id), DeviceIndex(dev), reg) {
            Ok(value) => {
                // SAFETY: non-NULL, and the caller promises it points to a writable uint64_t.
                unsafe { data.write(value) };
                0
            }
            Err(e) => fail(&e),
        }
    })
}

/// Writes `data` to register `reg` of device `dev` on `cpu_id`; bits outside the register's
/// write mask keep their value. Return values as HPMread.
#[no_mangle]
pub extern "C" fn HPMwrite(cpu_id: u32, dev: PciDeviceIndex, reg: u32, data: u64) -> i32 {
    guard(-libc::EFAULT, || status(client::write(HwThread(cpu_id), DeviceIndex(dev), reg, data)))
}

/// 1 when device `dev` on `cpu_id` can be accessed, else 0 (HPMlastError says why).
#[no_mangle]
pub extern "C" fn HPMcheck(dev: PciDeviceIndex, cpu_id: u32) -> i32 {
    guard(0, || match client::check(DeviceIndex(dev), HwThread(cpu_id)) {
        Ok(()) => 1,
        Err(e) => {
            fail(&e);
            0
        }
    })
}

mod ext;
mod last_error;
mod likwid3;
mod pci_index;

pub use ext::{HPMBatchOp, HPM_BATCH_MAX, HPM_BATCH_READ, HPM_BATCH_WRITE};
pub use last_error::HPMlastError;
pub use pci_index::*;
