//! The fan-out of group commit, as both SQL backends do it: each commit waits as a [`Pending`]
//! with its own reply; when the batch's transaction has ended, every commit is answered with its
//! own outcome ([`answer`]), and a failed `COMMIT` fails every commit that had succeeded
//! ([`settle`]). How a batch is gathered and written (a thread on SQLite, a task pipelining
//! savepoints on PostgreSQL) stays with each backend.

use tokio::sync::oneshot;

use crate::store::{Commit, StoreError};

/// The most commits one transaction takes.
pub(crate) const MAX_BATCH: usize = 256;

/// A commit waiting for its batch, with where to send its own result.
pub(crate) struct Pending {
    /// The commit.
    pub(crate) commit: Commit,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// Where a queued commit's result arrives.
pub(crate) struct Answer(oneshot::Receiver<Result<(), StoreError>>);

impl Pending {
    /// `commit`, ready to queue, and where its result will arrive.
    pub(crate) fn new(commit: Commit) -> (Self, Answer) {
        let (reply, answer) = oneshot::channel();
        (Self { commit, reply }, Answer(answer))
    }
}

impl Answer {
    /// The commit's result.
    ///
    /// # Errors
    /// The commit's own; a backend error if the committer stopped before answering.
    pub(crate) async fn wait(self) -> Result<(), StoreError> {
        self.0.await.map_err(|_| stopped())?
    }
}

/// The error of a commit that found the committer gone.
pub(crate) fn stopped() -> StoreError {
    StoreError::backend("the group committer stopped")
}

/// The outcomes of a batch whose commits ended as `outcomes` inside a transaction that then
/// ended with `end`: unchanged if it committed; otherwise nothing of the batch is kept, and
/// those that had succeeded fail with the transaction's error.
pub(crate) fn settle(
    outcomes: Vec<Result<(), StoreError>>,
    end: Result<(), StoreError>,
) -> Vec<Result<(), StoreError>> {
    match end {
        Ok(()) => outcomes,
        Err(e) => outcomes
            .into_iter()
            .map(|outcome| outcome.and(Err(e.clone())))
            .collect(),
    }
}

/// Answers each commit of `batch` with its outcome, in order.
pub(crate) fn answer(batch: Vec<Pending>, outcomes: Vec<Result<(), StoreError>>) {
    debug_assert_eq!(batch.len(), outcomes.len());
    for (pending, outcome) in batch.into_iter().zip(outcomes) {
        // A caller that went away (its request cancelled) needs no answer.
        let _ = pending.reply.send(outcome);
    }
}

/// Answers every commit of `batch` with `e`: the batch could not even start.
pub(crate) fn fail(batch: Vec<Pending>, e: &StoreError) {
    let outcomes = batch.iter().map(|_| Err(e.clone())).collect();
    answer(batch, outcomes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_commit_fails_those_that_had_succeeded() {
        let conflict = || StoreError::VersionConflict {
            aggregate_id: "u1".into(),
            sequence: 2,
        };
        let settled = settle(
            vec![Ok(()), Err(conflict())],
            Err(StoreError::backend("disk I/O error")),
        );
        assert!(matches!(settled[0], Err(StoreError::Backend { .. })));
        assert!(matches!(
            settled[1],
            Err(StoreError::VersionConflict { .. })
        ));
        let kept = settle(vec![Ok(()), Err(conflict())], Ok(()));
        assert!(kept[0].is_ok() && kept[1].is_err());
    }

    #[tokio::test]
    async fn each_commit_gets_its_own_answer() {
        let (first, first_answer) = Pending::new(Commit::default());
        let (second, second_answer) = Pending::new(Commit::default());
        answer(
            vec![first, second],
            vec![Ok(()), Err(StoreError::backend("no"))],
        );
        assert!(first_answer.wait().await.is_ok());
        assert!(second_answer.wait().await.is_err());
        let (gone, gone_answer) = Pending::new(Commit::default());
        drop(gone);
        assert!(matches!(
            gone_answer.wait().await,
            Err(StoreError::Backend { .. })
        ));
    }
}
