//! Commit statistics: every durable commit (one batch under group commit) reports how long it
//! took and how many commands it carried to one process-wide observer, which the binary points
//! at its metrics. Without an observer, reporting costs a relaxed atomic load.

use std::sync::OnceLock;
use std::time::Duration;

type Observer = Box<dyn Fn(Duration, usize) + Send + Sync>;

static OBSERVER: OnceLock<Observer> = OnceLock::new();

/// Sets the process's commit observer: `observer(took, commands_in_batch)`. Only the first call
/// takes effect; it returns whether this one did.
pub fn set_commit_observer(observer: impl Fn(Duration, usize) + Send + Sync + 'static) -> bool {
    OBSERVER.set(Box::new(observer)).is_ok()
}

/// Reports one durable commit of `batch` commands that took `took`.
pub(crate) fn record(took: Duration, batch: usize) {
    if let Some(observer) = OBSERVER.get() {
        observer(took, batch);
    }
}
