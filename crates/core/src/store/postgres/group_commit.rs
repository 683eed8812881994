//! The group committer: one task takes the commits waiting, writes them in one transaction with
//! a SAVEPOINT around each (so that a failing one fails alone), and answers each.

use deadpool_postgres::{Pool, Transaction};
use tokio::sync::mpsc;

use super::{MAX_BATCH, Pending, apply_commit, backend};
use crate::store::{Commit, StoreError};

/// The group committer: takes what is waiting (up to [`MAX_BATCH`]), commits it as one
/// transaction, answers each, repeats. Ends when every store handle is dropped.
pub(super) async fn run_committer(pool: Pool, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit_batch(&pool, std::mem::take(&mut batch)).await;
    }
}

async fn commit_batch(pool: &Pool, batch: Vec<Pending>) {
    let started = std::time::Instant::now();
    let size = batch.len();
    let mut client = match pool.get().await {
        Ok(client) => client,
        Err(e) => {
            let message = format!("database connection: {e}");
            for pending in batch {
                let _ = pending
                    .reply
                    .send(Err(StoreError::Backend(message.clone())));
            }
            return;
        }
    };
    let mut tx = match client.transaction().await {
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
        let outcome = apply_in_savepoint(&mut tx, &pending.commit).await;
        outcomes.push((pending, outcome));
    }
    match tx.commit().await {
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

/// One commit of a batch inside its own SAVEPOINT: on failure only it is rolled back.
///
/// Pipelined: SAVEPOINT and the commit's statements are sent before the first answer is
/// awaited, then RELEASE — two round trips per command instead of four. RELEASE waits for the
/// statements' answers on purpose: a statement whose preparation needs a round trip is sent
/// later than its siblings, and must still run inside the savepoint. After a failure
/// PostgreSQL rejects the rest, and ROLLBACK TO SAVEPOINT undoes just this command; the error
/// reported is the first in statement order.
async fn apply_in_savepoint(tx: &mut Transaction<'_>, commit: &Commit) -> Result<(), StoreError> {
    let tx: &Transaction<'_> = tx;
    let (saved, applied) = futures_util::future::join(
        tx.batch_execute("SAVEPOINT sy_commit"),
        apply_commit(tx, commit),
    )
    .await;
    match (saved, applied) {
        (Ok(()), Ok(())) => tx
            .batch_execute("RELEASE SAVEPOINT sy_commit")
            .await
            .map_err(backend),
        (saved, applied) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT sy_commit; RELEASE SAVEPOINT sy_commit")
                .await
                .map_err(backend)?;
            saved.map_err(backend)?;
            applied
        }
    }
}
