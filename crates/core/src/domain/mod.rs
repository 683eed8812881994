//! The domain: aggregates, their state machines and events, and the one error type. Pure: no
//! I/O, no protocol.

pub mod error;
pub mod event;
pub mod id;
pub mod org;
pub mod token;
pub mod user;

use std::time::{SystemTime, UNIX_EPOCH};

pub use error::{DomainError, ErrorKind};

/// Now, in µs since the Unix epoch (the resolution event times are stored with).
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
