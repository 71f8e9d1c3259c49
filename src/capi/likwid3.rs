//! LIKWID 3's access functions, with LIKWID 3.1.3's names and C signatures, over the same
//! client code as the HPM functions. LIKWID 3 returned values and `void`, so these report
//! through `errno`: 0 after success, a positive errno after a failure (the value returned is
//! then 0). Each export checks its pointers, runs inside the panic boundary and delegates.

use super::{guard, remember, PciDeviceIndex};
use crate::client::sessions;
use crate::client::{self, Mode};
use crate::engine::Op;
use crate::error::AccessError;
use crate::wire::DeviceIndex;
use nix::errno::Errno;
use std::ffi::c_int;

/// LIKWID 3's access mode for accessClient_setaccessmode: the device files in-process.
pub const DAEMON_AM_DIRECT: c_int = 0;
/// LIKWID 3's access mode for accessClient_setaccessmode: through likwid-accessD (default).
pub const DAEMON_AM_ACCESS_D: c_int = 1;
/// LIKWID 3's device number of the MSRs for accessClient_read/accessClient_write. Its values
/// 0 to 13 name PCI uncore devices, which are not served.
pub const DAEMON_AD_MSR: c_int = 14;

/// Runs `body` inside the panic boundary and reports its outcome through errno: 0 after
/// success, the positive errno after a failure (the result is then `failed`).
fn with_errno<T: Copy>(failed: T, body: impl FnOnce() -> Result<T, AccessError>) -> T {
    let (value, errno) = guard((failed, libc::EFAULT), || match body() {
        Ok(value) => (value, 0),
        Err(e) => {
            remember(&e);
            (failed, e.errno())
        }
    });
    Errno::set_raw(errno);
    value
}

fn msr(fd: c_int, cpu: c_int, reg: u32, op: Op) -> Result<u64, AccessError> {
    sessions::access(fd, cpu, DeviceIndex::MSR, reg, op)
}

/// One PCI uncore access of LIKWID 3's 32-bit pci_* functions: `index` is a PciDeviceIndex of
/// this header (LIKWID 5.2's numbering), `cpu` a hardware thread whose socket is addressed.
fn pci(fd: c_int, cpu: c_int, index: PciDeviceIndex, reg: u32, op: Op) -> Result<u32, AccessError> {
    if DeviceIndex(index).is_msr() {
        return Err(AccessError::BadDevice);
    }
    sessions::access(fd, cpu, DeviceIndex(index), reg, op).map(|v| v as u32)
}

/// Selects how later accessClient_init/msr_read reach the registers: DAEMON_AM_ACCESS_D
/// (default) or DAEMON_AM_DIRECT (in-process; the process needs the privileges itself), as
/// HPMmode. Other values change nothing and set errno to EINVAL.
#[no_mangle]
pub extern "C" fn accessClient_setaccessmode(mode: c_int) {
    with_errno((), || {
        let mode = match mode {
            DAEMON_AM_DIRECT => Mode::Direct,
            DAEMON_AM_ACCESS_D => Mode::Daemon,
            other => return Err(AccessError::BadMode(other)),
        };
        client::set_mode(mode);
        Ok(())
    })
}

/// Starts a likwid-accessD of its own for the caller (call it once per thread for a
/// thread-per-socket program) and stores a file descriptor naming that session in
/// `*socket_fd`, for msr_init, msr_tread/msr_twrite and accessClient_read/accessClient_write.
/// In DAEMON_AM_DIRECT mode it stores -1, the process-wide session. errno: 0, EFAULT for a
/// NULL `socket_fd`, else as HPMaddThread (ENOENT daemon missing, EACCES not privileged,
/// ENXIO no msr device files, ENOLCK locked, ENOTSUP unsupported CPU), with `*socket_fd`
/// set to -1 and HPMlastError saying why.
///
/// # Safety
/// `socket_fd` must be NULL or point to a writable int.
#[no_mangle]
pub unsafe extern "C" fn accessClient_init(socket_fd: *mut c_int) {
    with_errno((), || {
        if socket_fd.is_null() {
            return Err(AccessError::NullPointer);
        }
        let result = sessions::open();
        let fd = *result.as_ref().unwrap_or(&sessions::PROCESS_SESSION);
        // SAFETY: non-NULL, and the caller promises it points to a writable int.
        unsafe { socket_fd.write(fd) };
        result.map(|_| ())
    })
}

/// Ends the session `socket_fd` from accessClient_init: EXIT to its daemon, which is reaped,
/// and the descriptor is closed. -1 is ignored. errno: 0, or EBADF when `socket_fd` names no
/// open session (never opened, or already finalized).
#[no_mangle]
pub extern "C" fn accessClient_finalize(socket_fd: c_int) {
    with_errno((), || sessions::close(socket_fd))
}

/// Reads register `reg` of `device` on `cpu` through session `socket_fd` (-1: the
/// process-wide session). `device` uses LIKWID 3's numbering: DAEMON_AD_MSR (14) is the MSR;
/// the PCI devices 0 to 13 are not served (EFAULT). Returns the value, 0 on failure.
/// errno: 0, or EBADF (no such session), EFAULT (device), ERANGE (cpu not on the machine),
/// EPERM (denied by policy), ENOLCK (lock file), EIO (access failed), ENOTCONN (daemon gone).
#[no_mangle]
pub extern "C" fn accessClient_read(socket_fd: c_int, cpu: c_int, device: c_int, reg: u32) -> u64 {
    with_errno(0, || match device {
        DAEMON_AD_MSR => msr(socket_fd, cpu, reg, Op::Read),
        _ => Err(AccessError::BadDevice),
    })
}

/// Writes `data` to register `reg` of `device` on `cpu` through session `socket_fd`; bits
/// outside the register's write mask keep their value. Devices and errno as
/// accessClient_read.
#[no_mangle]
pub extern "C" fn accessClient_write(socket_fd: c_int, cpu: c_int, device: c_int, reg: u32, data: u64) {
    with_errno((), || match device {
        DAEMON_AD_MSR => msr(socket_fd, cpu, reg, Op::Write(data)).map(|_| ()),
        _ => Err(AccessError::BadDevice),
    })
}

/// Makes `socket_fd` (from accessClient_init; -1: the process-wide session, started on first
/// use as with HPMaddThread) the session of msr_read/msr_write. errno: 0, or EBADF when
/// `socket_fd` names no open session.
#[no_mangle]
pub extern "C" fn msr_init(socket_fd: c_int) {
    with_errno((), || sessions::set_default(socket_fd))
}

/// Forgets msr_init's session. If it was the process-wide one, that session ends as with
/// HPMfinalize; a session from accessClient_init stays open until accessClient_finalize.
#[no_mangle]
pub extern "C" fn msr_finalize() {
    with_errno((), || {
        sessions::clear_default();
        Ok(())
    })
}

/// Reads MSR `reg` on `cpu` through msr_init's session. Returns the value, or 0 with errno
/// set: errno is 0 after success, else EBADF, ERANGE, EPERM, ENOLCK, EIO or ENOTCONN as for
/// accessClient_read.
#[no_mangle]
pub extern "C" fn msr_read(cpu: c_int, reg: u32) -> u64 {
    with_errno(0, || msr(sessions::default_session(), cpu, reg, Op::Read))
}

/// Writes MSR `reg` on `cpu` through msr_init's session; bits outside the register's write
/// mask keep their value. errno as msr_read.
#[no_mangle]
pub extern "C" fn msr_write(cpu: c_int, reg: u32, data: u64) {
    with_errno((), || msr(sessions::default_session(), cpu, reg, Op::Write(data)).map(|_| ()))
}

/// Reads MSR `reg` on `cpu` through session `socket_fd` (thread-safe variant of msr_read).
/// Returns the value, or 0 with errno set as for msr_read.
#[no_mangle]
pub extern "C" fn msr_tread(socket_fd: c_int, cpu: c_int, reg: u32) -> u64 {
    with_errno(0, || msr(socket_fd, cpu, reg, Op::Read))
}

/// Writes MSR `reg` on `cpu` through session `socket_fd` (thread-safe variant of msr_write).
/// errno as msr_read.
#[no_mangle]
pub extern "C" fn msr_twrite(socket_fd: c_int, cpu: c_int, reg: u32, data: u64) {
    with_errno((), || msr(socket_fd, cpu, reg, Op::Write(data)).map(|_| ()))
}

/// Makes `socket_fd` the session of pci_read/pci_write; it is msr_init's session (one per
/// process), so this is msr_init.
#[no_mangle]
pub extern "C" fn pci_init(socket_fd: c_int) {
    msr_init(socket_fd)
}

/// Counterpart of pci_init: msr_finalize.
#[no_mangle]
pub extern "C" fn pci_finalize() {
    msr_finalize()
}

/// Reads the 32-bit config register `reg` of uncore device `index` (PCI_* of this header) on
/// the socket of hardware thread `cpu`, through pci_init's session. Returns the value, or 0
/// with errno set: EFAULT for MSR_DEV or an index outside the numbering, ENODEV for a device
/// the socket does not have, EPERM for an offset the policy denies, as HPMread.
#[no_mangle]
pub extern "C" fn pci_read(cpu: c_int, index: PciDeviceIndex, reg: u32) -> u32 {
    with_errno(0, || pci(sessions::default_session(), cpu, index, reg, Op::Read))
}

/// Writes `data` to config register `reg` of uncore device `index` on the socket of `cpu`
/// (write mask applied). errno as pci_read.
#[no_mangle]
pub extern "C" fn pci_write(cpu: c_int, index: PciDeviceIndex, reg: u32, data: u32) {
    with_errno((), || pci(sessions::default_session(), cpu, index, reg, Op::Write(data.into())).map(|_| ()))
}

/// As pci_read, through session `socket_fd`.
#[no_mangle]
pub extern "C" fn pci_tread(socket_fd: c_int, cpu: c_int, index: PciDeviceIndex, reg: u32) -> u32 {
    with_errno(0, || pci(socket_fd, cpu, index, reg, Op::Read))
}

/// As pci_write, through session `socket_fd`.
#[no_mangle]
pub extern "C" fn pci_twrite(socket_fd: c_int, cpu: c_int, index: PciDeviceIndex, reg: u32, data: u32) {
    with_errno((), || pci(socket_fd, cpu, index, reg, Op::Write(data.into())).map(|_| ()))
}
