//! Batches: many accesses, one round trip to our daemon (one call to the engine in direct
//! mode), each with its own result. Against LIKWID's daemon they fall back to single records.

use super::{daemon_access, reply_result, request, with_state, Backend, State};
use crate::engine::Op;
use crate::error::AccessError;
use crate::wire::{self, DeviceIndex, HwThread, Record};

/// One access of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOp {
    pub thread: HwThread,
    pub device: DeviceIndex,
    pub reg: u32,
    pub op: Op,
}

impl State {
    /// The accesses that passed the client's checks, as (record cpu, operation), in order:
    /// one result each.
    fn run(&mut self, todo: &[(u32, BatchOp)]) -> Result<Vec<Result<u64, AccessError>>, AccessError> {
        if todo.is_empty() {
            return Ok(Vec::new());
        }
        self.start()?;
        Ok(match self.backend.as_mut().expect("started") {
            Backend::Direct(engine) => {
                todo.iter().map(|(cpu, o)| engine.execute(*cpu, o.device.0, o.reg, o.op)).collect()
            }
            Backend::Daemon(conn) if conn.batches() => {
                let requests: Vec<Record> = todo.iter().map(|(cpu, o)| request(o.op, *cpu, o.device, o.reg)).collect();
                conn.batch(&requests)?.iter().map(reply_result).collect()
            }
            Backend::Daemon(conn) => {
                todo.iter().map(|(cpu, o)| daemon_access(conn, *cpu, o.device, o.reg, o.op)).collect()
            }
        })
    }
}

/// Executes `ops` in order; an operation that is already an error (the caller could not make
/// one of it) keeps that error. The outer error is for the batch as a whole (too large, daemon
/// gone), the inner ones per operation, as HPMread/HPMwrite would return them.
pub fn batch(ops: &[Result<BatchOp, AccessError>]) -> Result<Vec<Result<u64, AccessError>>, AccessError> {
    if ops.len() > wire::MAX_BATCH as usize {
        return Err(AccessError::TooBig(ops.len()));
    }
    with_state(|s| {
        // Each operation's record cpu, or why it has none (checked as HPMread checks).
        let addressed: Vec<Result<(u32, BatchOp), AccessError>> =
            ops.iter().map(|o| o.clone().and_then(|o| s.address(o.thread, o.device).map(|cpu| (cpu, o)))).collect();
        let todo: Vec<(u32, BatchOp)> = addressed.iter().filter_map(|a| a.as_ref().ok().copied()).collect();
        let mut done = s.run(&todo)?.into_iter();
        Ok(addressed.into_iter().map(|a| a.and_then(|_| done.next().expect("one result per access"))).collect())
    })
}
