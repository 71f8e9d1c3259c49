//! Batches: many accesses, one round trip to our daemon (one call to the engine in direct
//! mode), each with its own result. Against LIKWID's daemon they fall back to single records.

use super::{daemon_access, reply_result, with_state, Backend, State};
use crate::engine::Op;
use crate::error::AccessError;
use crate::wire::{self, Record};

/// One access of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOp {
    pub cpu: u32,
    pub device: i32,
    pub reg: u32,
    pub op: Op,
}

impl BatchOp {
    fn request(&self) -> Record {
        match self.op {
            Op::Read => Record::request(wire::TYPE_READ, self.cpu, self.device, self.reg, 0),
            Op::Write(v) => Record::request(wire::TYPE_WRITE, self.cpu, self.device, self.reg, v),
        }
    }
}

impl State {
    fn batch(&mut self, ops: &[BatchOp]) -> Result<Vec<Result<u64, AccessError>>, AccessError> {
        // The record's cpu: the thread for MSRs, its socket for PCI devices.
        let mut results: Vec<_> = ops.iter().map(|o| self.address(o.cpu, o.device).map(u64::from)).collect();
        let pending: Vec<usize> = (0..ops.len()).filter(|i| results[*i].is_ok()).collect();
        let addressed: Vec<BatchOp> = ops
            .iter()
            .zip(&results)
            .map(|(o, r)| BatchOp { cpu: r.as_ref().map_or(o.cpu, |c| *c as u32), ..*o })
            .collect();
        let ops = &addressed[..];
        if pending.is_empty() {
            return Ok(results);
        }
        self.start()?;
        match self.backend.as_mut().expect("started") {
            Backend::Direct(engine) => {
                for &i in &pending {
                    let o = &ops[i];
                    results[i] = engine.execute(o.cpu, o.device, o.reg, o.op);
                }
            }
            Backend::Daemon(conn) if conn.batches() => {
                let requests: Vec<Record> = pending.iter().map(|&i| ops[i].request()).collect();
                let replies = conn.batch(&requests)?;
                for (&i, reply) in pending.iter().zip(&replies) {
                    results[i] = reply_result(reply);
                }
            }
            Backend::Daemon(conn) => {
                for &i in &pending {
                    let o = &ops[i];
                    results[i] = daemon_access(conn, o.cpu, o.device, o.reg, o.op);
                }
            }
        }
        Ok(results)
    }
}

/// Executes `ops` in order; the outer error is for the batch as a whole (too large, daemon
/// gone), the inner ones per operation, as HPMread/HPMwrite would return them.
pub fn batch(ops: &[BatchOp]) -> Result<Vec<Result<u64, AccessError>>, AccessError> {
    if ops.len() > wire::MAX_BATCH as usize {
        return Err(AccessError::TooBig(ops.len()));
    }
    with_state(|s| s.batch(ops))
}
