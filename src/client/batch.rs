//! Batches: many accesses, one round trip to our daemon (one call to the engine in direct
//! mode), each with its own result. Against LIKWID's daemon they fall back to single records.
//!
//! The caller's operations are read in place (`BatchSlot`) and the results written back in
//! place: the records go straight into the connection's reused send buffer and the replies are
//! decoded straight into the caller's slots, so a batch allocates nothing per operation (a
//! batch of 1024 costs a few hundred instructions per read otherwise, issue 14).

use super::machine::{served, Machine};
use super::{daemon_access, reply_result, request, with_state, Backend, State};
use crate::engine::Op;
use crate::error::AccessError;
use crate::wire::{self, DeviceIndex, HwThread, Record, Socket, RECORD_LEN};
use std::collections::BTreeSet;

/// One access of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOp {
    pub thread: HwThread,
    pub device: DeviceIndex,
    pub reg: u32,
    pub op: Op,
}

/// One operation of a batch as the caller holds it (HPMbatch's HPMBatchOp).
pub trait BatchSlot {
    /// The access, or why the caller's operation is not one (it keeps that error).
    fn op(&self) -> Result<BatchOp, AccessError>;
    /// Takes the access's result, as HPMread/HPMwrite would return it.
    fn finish(&mut self, result: Result<u64, AccessError>);
}

/// The record cpu of each operation, checked as HPMread checks (device, then thread), with the
/// thread's half remembered for the last thread that passed it: a batch mostly repeats one
/// thread. A thread that fails is asked again each time (rare, and the answer is the same).
struct Addresser<'a> {
    machine: &'a Machine,
    added: &'a BTreeSet<HwThread>,
    last: Option<(HwThread, Socket)>,
}

impl Addresser<'_> {
    #[inline]
    fn address(&mut self, o: &BatchOp) -> Result<u32, AccessError> {
        served(o.device)?;
        let socket = match self.last {
            Some((thread, socket)) if thread == o.thread => socket,
            _ => {
                let socket = self.machine.thread_socket(o.thread, Some(self.added))?;
                self.last = Some((o.thread, socket));
                socket
            }
        };
        Ok(Machine::cpu_of(o.thread, socket, o.device))
    }

    /// The operation of `slot` with its record cpu, or the error it gets. Inlined into the
    /// batch loops (about 20 instructions per operation of call overhead otherwise: the
    /// result is returned through memory).
    #[inline]
    fn resolve(&mut self, slot: &impl BatchSlot) -> Result<(u32, BatchOp), AccessError> {
        let o = slot.op()?;
        Ok((self.address(&o)?, o))
    }
}

/// The result of a batch reply that is not a success, out of line: inlined into the reply
/// loop, the code's match became a jump table every reply went through (callgrind).
#[cold]
#[inline(never)]
fn reply_error(reply: &[u8; RECORD_LEN]) -> Result<u64, AccessError> {
    reply_result(&Record::decode(reply))
}

/// Executes the operations of `slots` in order and gives each its result (in order); an
/// operation the caller could not make keeps its error. The returned error is for the batch as
/// a whole (too large, daemon gone): then no slot has been given a result.
pub fn batch<S: BatchSlot>(slots: &mut [S]) -> Result<(), AccessError> {
    if slots.len() > wire::MAX_BATCH as usize {
        return Err(AccessError::TooBig(slots.len()));
    }
    with_state(|s| s.batch(slots))
}

impl State {
    fn batch<S: BatchSlot>(&mut self, slots: &mut [S]) -> Result<(), AccessError> {
        // Nothing is started for a batch none of whose operations passes the client's checks.
        let mut at = Addresser { machine: &self.machine, added: &self.added, last: None };
        if !slots.iter().any(|slot| at.resolve(slot).is_ok()) {
            let mut at = Addresser { machine: &self.machine, added: &self.added, last: None };
            for slot in slots.iter_mut() {
                if let Err(e) = at.resolve(slot) {
                    slot.finish(Err(e));
                }
            }
            return Ok(());
        }
        self.start()?;
        let mut at = Addresser { machine: &self.machine, added: &self.added, last: None };
        match self.backend.as_mut().expect("started") {
            Backend::Direct(engine) => {
                for slot in slots.iter_mut() {
                    let result = at.resolve(slot).and_then(|(cpu, o)| engine.execute(cpu, o.device.0, o.reg, o.op));
                    slot.finish(result);
                }
            }
            Backend::Daemon(conn) if conn.batches() => {
                // A record per operation that passes, in order; one that does not keeps its
                // error and sends nothing.
                let mut records = conn.batch_frame(slots.len()).chunks_exact_mut(RECORD_LEN);
                let mut refused = false;
                for slot in slots.iter() {
                    // As an Option: the error is not needed here, and a live `Result` with an
                    // `AccessError` was stored to the stack per operation (callgrind).
                    match at.resolve(slot).ok() {
                        Some((cpu, o)) => records
                            .next()
                            .expect("a record per operation")
                            .copy_from_slice(&request(o.op, cpu, o.device, o.reg).encode()),
                        None => refused = true,
                    }
                }
                let sent = slots.len() - records.len();
                let replies = conn.send_batch(sent)?;
                let mut replies = replies.chunks_exact(RECORD_LEN);
                if !refused {
                    // Every operation was sent: its reply is the next one (checking each
                    // operation again cost about 70 instructions per read, callgrind). The
                    // reply is decoded where used: a decoded record kept for the rare error
                    // was copied to the stack per reply.
                    for (slot, reply) in slots.iter_mut().zip(replies) {
                        let reply: &[u8; RECORD_LEN] = reply.try_into().expect("a record");
                        let (data, code) = {
                            let r = Record::decode(reply);
                            (r.data, r.errorcode)
                        };
                        slot.finish(match code {
                            wire::ERR_NOERROR => Ok(data),
                            _ => reply_error(reply),
                        });
                    }
                    return Ok(());
                }
                let mut at = Addresser { machine: at.machine, added: at.added, last: None };
                for slot in slots.iter_mut() {
                    let result = at.resolve(slot).and_then(|_| {
                        let reply = replies.next().expect("one reply per request");
                        reply_result(&Record::decode(reply.try_into().expect("a record")))
                    });
                    slot.finish(result);
                }
            }
            Backend::Daemon(conn) => {
                for slot in slots.iter_mut() {
                    let result = at.resolve(slot).and_then(|(cpu, o)| daemon_access(conn, cpu, o.device, o.reg, o.op));
                    slot.finish(result);
                }
            }
        }
        Ok(())
    }
}
