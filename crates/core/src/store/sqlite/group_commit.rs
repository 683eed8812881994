//! Group commit for SQLite: one writer thread takes every commit waiting in its queue and
//! writes them in one transaction, so one fsync makes the whole batch durable. A commit that
//! fails (a lost race, a taken user name) fails alone and is answered with its own error,
//! while the rest of the batch commits ([`commit_batch`]).
//!
//! The batch size adapts to load by itself: while a batch is being fsync'd, the next one
//! queues up.
//!
//! After a batch commits, and before any of it is answered, the writer applies it to the
//! write model ([`Cache`]); before each batch, and every [`EXTERNAL_CHECK`] while idle, it
//! looks for another process's commit.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::cache::{Cache, EXTERNAL_CHECK};
use super::lock;
use super::write::{append, exec, in_savepoint, rollback, transaction};
use crate::store::sql::fan_out::{self, MAX_BATCH, Pending, stopped};
use crate::store::{Commit, StoreError};

/// The handle to the writer thread; the thread ends when this is dropped.
pub(super) struct Committer {
    queue: mpsc::Sender<Pending>,
}

impl Committer {
    /// Starts the writer thread on `writer`.
    pub(super) fn start(
        writer: Arc<Mutex<Connection>>,
        cache: Arc<Cache>,
    ) -> Result<Self, StoreError> {
        let (queue, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-commit".to_owned())
            .spawn(move || run(&writer, &cache, &rx))
            .map_err(|e| StoreError::backend(format!("start the writer thread: {e}")))?;
        Ok(Self { queue })
    }

    /// Queues `commit` and waits for its own result.
    pub(super) async fn submit(&self, commit: Commit) -> Result<(), StoreError> {
        let (pending, answer) = Pending::new(commit);
        self.queue.send(pending).map_err(|_| stopped())?;
        answer.wait().await
    }
}

fn run(writer: &Mutex<Connection>, cache: &Cache, rx: &mpsc::Receiver<Pending>) {
    cache.check_external(&lock(writer));
    loop {
        let first = match rx.recv_timeout(EXTERNAL_CHECK) {
            Ok(first) => first,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                cache.check_external(&lock(writer));
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let conn = lock(writer);
        cache.check_external(&conn);
        commit_batch(&conn, cache, batch);
    }
}

/// Commits `batch` as one transaction and answers each commit.
///
/// First optimistically: every commit straight into the transaction, no savepoints (a
/// SAVEPOINT costs its statements and a copy of every page the commit touches). Should any
/// commit fail, that transaction is rolled back and the batch runs again with a SAVEPOINT
/// around each commit, so that the failing ones fail alone; from the same starting state it
/// reaches the same outcomes. Failures are rare (a lost race, a taken name), so most batches
/// run once.
fn commit_batch(conn: &Connection, cache: &Cache, batch: Vec<Pending>) {
    let started = std::time::Instant::now();
    let size = batch.len();
    let outcome = transaction(conn, |conn| {
        batch
            .iter()
            .try_for_each(|pending| append(conn, &pending.commit))
    });
    let outcomes: Vec<Result<(), StoreError>> = match outcome {
        Ok(()) => {
            crate::store::stats::record(started.elapsed(), size);
            batch.iter().map(|_| Ok(())).collect()
        }
        Err(_) => each_in_savepoint(conn, &batch, started),
    };
    // The outcome of a failed COMMIT is not certain (it may have reached the disk): then
    // nothing cached can be vouched for.
    if outcomes
        .iter()
        .any(|o| matches!(o, Err(e) if !is_refusal(e)))
    {
        cache.clear();
    } else {
        for (pending, outcome) in batch.iter().zip(&outcomes) {
            match outcome {
                Ok(()) => cache.apply(&pending.commit),
                // Lost to another process whose commit the next batch's look finds: until
                // then, the retry must not decide on the same cached row again.
                Err(StoreError::VersionConflict { aggregate_id, .. }) => {
                    cache.forget(aggregate_id);
                }
                Err(_) => {}
            }
        }
    }
    fan_out::answer(batch, outcomes);
}

/// The careful pass: one transaction, a SAVEPOINT around each commit; the outcome of each.
fn each_in_savepoint(
    conn: &Connection,
    batch: &[Pending],
    started: std::time::Instant,
) -> Vec<Result<(), StoreError>> {
    if let Err(e) = exec(conn, "BEGIN") {
        return batch.iter().map(|_| Err(e.clone())).collect();
    }
    let outcomes: Vec<_> = batch
        .iter()
        .map(|pending| in_savepoint(conn, &pending.commit))
        .collect();
    let end = exec(conn, "COMMIT");
    match &end {
        Ok(()) => crate::store::stats::record(started.elapsed(), batch.len()),
        Err(_) => rollback(conn),
    }
    fan_out::settle(outcomes, end)
}

/// Whether `e` is a commit refused by the data (a lost race, a taken name), which leaves the
/// store exactly as without the commit: the rest of its batch is known.
fn is_refusal(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::VersionConflict { .. } | StoreError::UniqueViolation { .. }
    )
}
