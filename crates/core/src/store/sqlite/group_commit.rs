//! Group commit for SQLite: one writer thread takes every commit waiting in its queue and
//! writes them in one transaction, so one fsync makes the whole batch durable. Each commit runs
//! inside its own SAVEPOINT: one that fails (a lost race, a taken user name) is rolled back
//! alone and answered with its own error, while the rest of the batch commits.
//!
//! The batch size adapts to load by itself: while a batch is being fsync'd, the next one
//! queues up.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{append, backend, lock};
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
            .map_err(|e| StoreError::Backend(format!("start the writer thread: {e}")))?;
        Ok(Self { queue })
    }

    /// Queues `commit` and waits for its own result.
    pub(super) async fn submit(&self, commit: Commit) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { commit, reply })
            .map_err(|_| StoreError::Backend("the writer thread stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the writer thread stopped".to_owned()))?
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
        let mut conn = lock(writer);
        commit_batch(&mut conn, batch);
    }
}

/// Commits `batch` as one transaction and answers each commit.
fn commit_batch(conn: &mut Connection, batch: Vec<Pending>) {
    let started = std::time::Instant::now();
    let size = batch.len();
    let tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => {
            let message = e.to_string();
            for pending in batch {
                let _ = pending
                    .reply
                    .send(Err(StoreError::Backend(message.clone())));
            }
            return;
        }
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    for pending in batch {
        let outcome = in_savepoint(&tx, &pending.commit);
        outcomes.push((pending, outcome));
    }
    match tx.commit() {
        Ok(()) => {
            crate::store::stats::record(started.elapsed(), size);
            for (pending, outcome) in outcomes {
                let _ = pending.reply.send(outcome);
            }
        }
        Err(e) => {
            // Nothing of the batch is kept: those that had succeeded fail now.
            let message = e.to_string();
            for (pending, outcome) in outcomes {
                let _ = pending
                    .reply
                    .send(outcome.and(Err(StoreError::Backend(message.clone()))));
            }
        }
    }
}

/// Applies one commit inside a SAVEPOINT; on failure only it is undone.
fn in_savepoint(tx: &rusqlite::Transaction<'_>, commit: &Commit) -> Result<(), StoreError> {
    tx.execute_batch("SAVEPOINT sy_commit").map_err(backend)?;
    match append(tx, commit) {
        Ok(()) => tx.execute_batch("RELEASE sy_commit").map_err(backend),
        Err(e) => {
            tx.execute_batch("ROLLBACK TO sy_commit; RELEASE sy_commit")
                .map_err(backend)?;
            Err(e)
        }
    }
}
