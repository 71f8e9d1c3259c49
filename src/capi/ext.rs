//! Our extensions: many accesses in one call (one daemon round trip), and the daemon's pid.

use super::{fail, guard, PciDeviceIndex};
use crate::client::{self, BatchOp};
use crate::engine::Op;
use crate::error::AccessError;
use crate::wire::{DeviceIndex, HwThread};

/// `HPMBatchOp.op`: read the register into `data`.
pub const HPM_BATCH_READ: u32 = 0;
/// `HPMBatchOp.op`: write `data` to the register (write mask applied).
pub const HPM_BATCH_WRITE: u32 = 1;
/// Most operations one HPMbatch call takes.
pub const HPM_BATCH_MAX: u32 = 65536;

/// One operation of an HPMbatch call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HPMBatchOp {
    /// Hardware thread, as for HPMread.
    pub cpu: u32,
    /// Device, as for HPMread (MSR_DEV).
    pub dev: PciDeviceIndex,
    /// Register.
    pub reg: u32,
    /// HPM_BATCH_READ or HPM_BATCH_WRITE.
    pub op: u32,
    /// In: the value to write. Out: the value read.
    pub data: u64,
    /// Out: 0 or a negative errno, exactly as HPMread/HPMwrite would return for this operation
    /// (-EINVAL for an `op` that is neither read nor write).
    pub result: i32,
    /// Set to 0; reserved.
    pub reserved: u32,
}

/// Executes `count` operations in order, in one round trip to likwid-accessD (against LIKWID's
/// own daemon, one record each). Each operation gets its own `result`; a denied or failed
/// operation does not stop the others. Returns the number of operations whose result is not
/// 0, or a negative errno for the call as a whole: -EFAULT for NULL `ops` with a count,
/// -E2BIG for more than HPM_BATCH_MAX operations, -ENOTCONN when the daemon is gone (then no
/// result is valid).
///
/// # Safety
/// `ops` must be NULL (with `count` 0) or point to `count` writable HPMBatchOp.
#[no_mangle]
pub unsafe extern "C" fn HPMbatch(ops: *mut HPMBatchOp, count: u32) -> i32 {
    guard(-libc::EFAULT, || {
        if count == 0 {
            return 0;
        }
        if ops.is_null() {
            return -libc::EFAULT;
        }
        // SAFETY: non-NULL, and the caller promises `count` valid, writable elements.
        let ops = unsafe { std::slice::from_raw_parts_mut(ops, count as usize) };
        if let Err(e) = client::batch(ops) {
            return fail(&e);
        }
        // Every operation was given its result: 0 or a negative errno.
        ops.iter().filter(|o| o.result != 0).count() as i32
    })
}

/// The caller's operations are read and answered in place (no copy of the batch).
impl client::BatchSlot for HPMBatchOp {
    fn op(&self) -> Result<BatchOp, AccessError> {
        let op = match self.op {
            HPM_BATCH_READ => Op::Read,
            HPM_BATCH_WRITE => Op::Write(self.data),
            other => return Err(AccessError::BadOperation(other)),
        };
        Ok(BatchOp { thread: HwThread(self.cpu), device: DeviceIndex(self.dev), reg: self.reg, op })
    }

    fn finish(&mut self, result: Result<u64, AccessError>) {
        self.result = match result {
            Ok(value) => {
                if self.op == HPM_BATCH_READ {
                    self.data = value;
                }
                0
            }
            Err(e) => fail(&e),
        };
    }
}

/// The pid of the likwid-accessD serving this process (for monitoring: its memory, its
/// log lines), or 0 when none does (not started yet, direct mode, finalized). With the node's
/// service (`likwid-accessD --service`, used when /run/likwid-access/socket accepts and
/// LIKWID_ACCESS_SERVICE is not `off`) it is the service's pid, as the kernel reports the
/// socket's peer (SO_PEERCRED): shared by every client, not a process of this one.
#[no_mangle]
pub extern "C" fn HPMdaemonPid() -> i32 {
    guard(0, || client::daemon_pid().map_or(0, |pid| pid as i32))
}
