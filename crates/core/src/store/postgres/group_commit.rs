//! The group committer: one task takes the commits waiting, writes them in one transaction and
//! answers each. First optimistically, the whole batch in one flight ([`optimistic`]); only if
//! a commit fails, again with a SAVEPOINT around each, so that a failing one fails alone
//! ([`careful`]). SQLite's writer does the same (`store/sqlite/group_commit.rs`).

use deadpool_postgres::{Pool, Transaction};
use tokio::sync::mpsc;

use super::{apply_commit, backend, prepare_writes};
use crate::store::sql::fan_out::{self, MAX_BATCH, Pending};
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
        Err(e) => return fan_out::fail(batch, &super::pool_error(e)),
    };
    let outcomes = match optimistic(&mut client, &batch).await {
        Ok(()) => {
            crate::store::stats::record(started.elapsed(), size);
            batch.iter().map(|_| Ok(())).collect()
        }
        Err(Outcome::Uncertain(e)) => return fan_out::fail(batch, &e),
        Err(Outcome::Refused) => match careful(&mut client, &batch).await {
            Ok(outcomes) => {
                crate::store::stats::record(started.elapsed(), size);
                outcomes
            }
            Err(e) => return fan_out::fail(batch, &e),
        },
    };
    fan_out::answer(batch, outcomes);
}

/// Why the optimistic pass did not commit.
enum Outcome {
    /// A statement failed: the transaction was rolled back, nothing of the batch is kept, and
    /// the careful pass can decide each commit.
    Refused,
    /// The transaction could not begin or roll back, or its COMMIT failed (then whether it
    /// reached the disk is not known): every commit of the batch fails with this.
    Uncertain(StoreError),
}

/// The fast pass: every commit of the batch in one transaction without savepoints, all their
/// statements in one flight (sent in order before the first answer is awaited, see
/// [`apply_commit`]), then COMMIT: three round trips (BEGIN, the batch, COMMIT) whatever the batch's size. A failure is rare (a
/// lost race, a taken name), and PostgreSQL rejects every statement after the first failure,
/// so the batch is then rolled back and decided by [`careful`].
async fn optimistic(
    client: &mut deadpool_postgres::Object,
    batch: &[Pending],
) -> Result<(), Outcome> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| Outcome::Uncertain(backend(e)))?;
    let writes_with = prepare_writes(&tx).await.map_err(Outcome::Uncertain)?;
    let applied = futures_util::future::join_all(
        batch
            .iter()
            .map(|pending| apply_commit(&tx, &writes_with, &pending.commit)),
    )
    .await;
    if applied.iter().any(Result::is_err) {
        tx.rollback()
            .await
            .map_err(|e| Outcome::Uncertain(backend(e)))?;
        return Err(Outcome::Refused);
    }
    tx.commit()
        .await
        .map_err(|e| Outcome::Uncertain(backend(e)))
}

/// The careful pass: one transaction, a SAVEPOINT around each commit, so that a failing one
/// fails alone; the outcome of each, or the error that kept the transaction from beginning.
async fn careful(
    client: &mut deadpool_postgres::Object,
    batch: &[Pending],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let mut tx = client.transaction().await.map_err(backend)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for pending in batch {
        outcomes.push(apply_in_savepoint(&mut tx, &pending.commit).await);
    }
    let end = tx.commit().await.map_err(backend);
    Ok(fan_out::settle(outcomes, end))
}

/// One commit of a batch inside its own SAVEPOINT: on failure only it is rolled back.
///
/// Pipelined into one round trip: SAVEPOINT, the commit's statements and RELEASE are all sent
/// before the first answer is awaited. That is only sound if they leave in that order, so every
/// statement is prepared first ([`prepare_writes`]; cached per connection, free after its first
/// use) and handed in: nothing is awaited between the sends. (A statement prepared on the way
/// would leave after the RELEASE and run outside the savepoint, where a failure aborts the whole
/// batch: the three-node test caught that once.) PostgreSQL runs them in order; after a
/// failure it rejects the rest (the RELEASE too), and ROLLBACK TO SAVEPOINT undoes just this
/// command. The error reported is the first in statement order.
async fn apply_in_savepoint(tx: &mut Transaction<'_>, commit: &Commit) -> Result<(), StoreError> {
    let tx: &Transaction<'_> = tx;
    let writes_with = prepare_writes(tx).await?;
    let (saved, applied, released) = futures_util::future::join3(
        tx.batch_execute("SAVEPOINT sy_commit"),
        apply_commit(tx, &writes_with, commit),
        tx.batch_execute("RELEASE SAVEPOINT sy_commit"),
    )
    .await;
    match (saved, applied) {
        (Ok(()), Ok(())) => released.map_err(backend),
        (saved, applied) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT sy_commit; RELEASE SAVEPOINT sy_commit")
                .await
                .map_err(backend)?;
            saved.map_err(backend)?;
            applied
        }
    }
}
