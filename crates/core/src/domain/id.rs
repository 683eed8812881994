//! Ids for users, organizations and tokens: decimal strings of a 63-bit number that grows with
//! time, like ZITADEL's (snowflake-style: milliseconds, a per-process node number, a counter).
//!
//! Written by hand because the layout is ours to keep stable; each process draws a random node
//! number so that several nodes on one database do not collide.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// 2019-04-29T00:00:00Z in ms: ids count from here, leaving 41 bits ≈ 69 years.
const EPOCH_MS: u64 = 1_556_496_000_000;
const NODE_BITS: u32 = 10;
const COUNTER_BITS: u32 = 12;

/// Generates unique, time-ordered ids.
#[derive(Debug)]
pub struct IdGenerator {
    node: u64,
    state: Mutex<(u64, u64)>,
}

impl IdGenerator {
    /// A generator with a random node number.
    pub fn new() -> Self {
        Self::with_node(rand::random::<u64>() & ((1 << NODE_BITS) - 1))
    }

    /// A generator with a fixed node number (tests).
    pub fn with_node(node: u64) -> Self {
        Self {
            node: node & ((1 << NODE_BITS) - 1),
            state: Mutex::new((0, 0)),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(EPOCH_MS)
            .saturating_sub(EPOCH_MS);
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (last_ms, counter) = *guard;
        // Never go back in time: a clock step backwards keeps counting on the last millisecond.
        let (ms, counter) = if now > last_ms {
            (now, 0)
        } else if counter + 1 < (1 << COUNTER_BITS) {
            (last_ms, counter + 1)
        } else {
            (last_ms + 1, 0)
        };
        *guard = (ms, counter);
        let id = (ms << (NODE_BITS + COUNTER_BITS)) | (self.node << COUNTER_BITS) | counter;
        id.to_string()
    }
}

impl Default for IdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_increasing() {
        let ids = IdGenerator::with_node(7);
        let mut seen = HashSet::new();
        let mut last = 0u64;
        for _ in 0..20_000 {
            let id = ids.next_id();
            let n: u64 = id.parse().expect("decimal");
            assert!(n > last, "{n} after {last}");
            last = n;
            assert!(seen.insert(id));
        }
    }
}
