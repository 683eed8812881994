//! Group commit for SQLite: one writer thread takes every commit waiting in its queue and
//! writes them in one transaction, so one fsync makes the whole batch durable. A commit that
//! fails (a lost race, a taken user name) fails alone and is answered with its own error,
//! while the rest of the batch commits ([`commit_batch`]).
//!
//! The batch size adapts to load by itself: while a batch is being fsync'd, the next one
//! queues up.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::lock;
use super::write::{append, exec, in_savepoint, rollback, transaction};
use crate::store::{Commit, StoreError};

/// The most commits one transaction takes.
const MAX_BATCH: usize = 256;

/// A commit waiting for the writer thread, with where to send its own result.
struct Pending {
    commit: Commit,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The handle to the writer thread; the thread ends when this is dropped.
pub(super) struct Committer {
    queue: mpsc::Sender<Pending>,
}

impl Committer {
    /// Starts the writer thread on `writer`.
    pub(super) fn start(writer: Arc<Mutex<Connection>>) -> Result<Self, StoreError> {
        let (queue, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-commit".to_owned())
            .spawn(move || run(&writer, &rx))
            .map_err(|e| StoreError::backend(format!("start the writer thread: {e}")))?;
        Ok(Self { queue })
    }

    /// Queues `commit` and waits for its own result.
    pub(super) async fn submit(&self, commit: Commit) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { commit, reply })
            .map_err(|_| StoreError::backend("the writer thread stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| StoreError::backend("the writer thread stopped".to_owned()))?
    }
}

fn run(writer: &Mutex<Connection>, rx: &mpsc::Receiver<Pending>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        commit_batch(&lock(writer), batch);
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
fn commit_batch(conn: &Connection, batch: Vec<Pending>) {
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
    for (pending, outcome) in batch.into_iter().zip(outcomes) {
        let _ = pending.reply.send(outcome);
    }
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
    match exec(conn, "COMMIT") {
        Ok(()) => {
            crate::store::stats::record(started.elapsed(), batch.len());
            outcomes
        }
        Err(e) => {
            rollback(conn);
            // Nothing of the batch is kept: those that had succeeded fail now.
            outcomes
                .into_iter()
                .map(|outcome| outcome.and(Err(e.clone())))
                .collect()
        }
    }
}
