//! Connection-level log records, rate-limited per uid: a user who opens and drops connections
//! in a loop costs the log a bounded number of records and cannot drown other users' records.

use crate::daemon::TokenBucket;
use std::collections::HashMap;
use std::sync::Mutex;

/// Records allowed in a burst per uid, and refilled per second after it.
const BURST: f64 = 20.0;
const PER_SECOND: f64 = 2.0;
/// Uids remembered at most; beyond, the table starts over (bounded memory).
const MAX_UIDS: usize = 4096;

#[derive(Default)]
pub struct RateLimit {
    buckets: Mutex<HashMap<u32, TokenBucket>>,
}

impl RateLimit {
    /// Whether a record about `uid` may be logged now: Some(records suppressed since the last
    /// one logged), or None to drop it.
    pub fn admit(&self, uid: u32) -> Option<u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_UIDS && !buckets.contains_key(&uid) {
            buckets.clear();
        }
        buckets.entry(uid).or_insert_with(|| TokenBucket::new(BURST, PER_SECOND)).admit()
    }

    /// Logs `message` (a refusal or a dropped connection of `uid`) unless over the rate.
    pub fn warn(&self, uid: u32, message: &str) {
        if let Some(suppressed) = self.admit(uid) {
            if suppressed > 0 {
                log::warn!("{suppressed} more records about uid {uid} were not logged (rate limit)");
            }
            log::warn!("{message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_per_uid_and_counted() {
        let limit = RateLimit::default();
        let admitted = (0..1000).filter(|_| limit.admit(7).is_some()).count();
        assert!((20..=22).contains(&admitted), "{admitted}");
        assert_eq!(limit.admit(8), Some(0), "another uid is not drowned");
        std::thread::sleep(std::time::Duration::from_millis(600));
        assert!(limit.admit(7).is_some_and(|n| n >= 970), "the next record says how many were dropped");
    }
}
