//! The audit trail of refused requests, rate-limited so a flood of denials costs the log a
//! bounded number of records and never slows serving.

use super::serve::Peer;
use crate::error::AccessError;
use crate::wire::{Kind, Record};
use std::time::Instant;

/// Records allowed in a burst, and refilled per second after it.
const BURST: f64 = 20.0;
const PER_SECOND: f64 = 5.0;

/// A log rate limit (token bucket): `burst` records at once, then `per_second`; counts what it
/// dropped so the next record admitted can say so.
pub(crate) struct TokenBucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl TokenBucket {
    pub(crate) fn new(burst: f64, per_second: f64) -> TokenBucket {
        TokenBucket { burst, per_second, tokens: burst, last: Instant::now(), suppressed: 0 }
    }

    /// Some(records dropped since the last one admitted) when a record may be logged now.
    pub(crate) fn admit(&mut self) -> Option<u64> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.per_second).min(self.burst);
        self.last = now;
        if self.tokens < 1.0 {
            self.suppressed += 1;
            return None;
        }
        self.tokens -= 1.0;
        Some(self.take_suppressed())
    }

    pub(crate) fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

pub struct Audit {
    peer: Peer,
    bucket: TokenBucket,
}

impl Audit {
    pub fn new(peer: Peer) -> Audit {
        Audit { peer, bucket: TokenBucket::new(BURST, PER_SECOND) }
    }

    fn admit(&mut self) -> bool {
        match self.bucket.admit() {
            Some(suppressed) => {
                self.report(suppressed);
                true
            }
            None => false,
        }
    }

    /// Logs a refused or failed request with who asked and what for.
    pub fn refused(&mut self, req: &Record, err: &AccessError) {
        if !self.admit() {
            return;
        }
        let op = Kind::verb(req.kind);
        let Peer { uid, pid } = self.peer;
        let (cpu, device, reg) = (req.cpu, req.device, req.reg);
        match err {
            AccessError::Denied { .. } => {
                log::warn!("denied {op}: uid={uid} pid={pid} cpu={cpu} device={device} reg={reg:#x}")
            }
            AccessError::NoDevice => {
                log::warn!("no such cpu or device in {op}: uid={uid} pid={pid} cpu={cpu} device={device} reg={reg:#x}")
            }
            AccessError::UnknownRequest => log::warn!("unknown request type {} from uid={uid} pid={pid}", req.kind),
            AccessError::Locked => log::info!("refused {op} while locked: uid={uid} pid={pid} cpu={cpu}"),
            other => log::error!("{op} failed: uid={uid} pid={pid} cpu={cpu} device={device} reg={reg:#x}: {other}"),
        }
    }

    /// Logs how many records the limit swallowed since the last one (at the next admitted
    /// record and at the end of the session, which is never rate-limited).
    pub fn summary(&mut self) {
        let suppressed = self.bucket.take_suppressed();
        self.report(suppressed);
    }

    fn report(&self, suppressed: u64) {
        if suppressed > 0 {
            let Peer { uid, pid } = self.peer;
            log::warn!("rate limit: {suppressed} audit records suppressed for uid={uid} pid={pid}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_burst() {
        let mut audit = Audit::new(Peer { uid: 1, pid: 2 });
        let admitted = (0..10_000).filter(|_| audit.admit()).count();
        assert!(admitted <= BURST as usize + 1, "{admitted} records admitted");
        assert!(audit.bucket.suppressed > 9_000);
    }
}
