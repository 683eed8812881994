//! The last-owner rule: no command may leave the instance without an active IAM_OWNER that can
//! still sign in, or nobody could ever administer it again (every call would be 401, and a
//! restart would not help). Deactivating, locking or removing that owner, or revoking its last
//! token, is FAILED_PRECONDITION; `switchyard admin recover` exists for the day it happens
//! anyway (a store edited by hand, tokens expired).
//!
//! An owner *can sign in* when it is active and is either a human (password or external
//! identity provider) or a machine with a personal access token that has not expired.
//!
//! The check reads the projections before the command commits: two concurrent commands on two
//! different owners can each see the other still standing. Owners are changed rarely and by
//! hand; closing that race would need the instance aggregate in every such commit.

use super::{Attempt, Core};
use crate::domain::org::MemberScope;
use crate::domain::user::{UserKind, UserState};
use crate::domain::{DomainError, now_us};

/// The role that administers the instance.
const IAM_OWNER: &str = "IAM_OWNER";

/// What a command is about to take away.
#[derive(Debug, Clone, Copy)]
pub(super) enum Loss<'a> {
    /// The user stops being able to sign in (deactivated, locked, removed).
    User(&'a str),
    /// One token of the user is revoked.
    Token {
        /// Its user.
        user_id: &'a str,
        /// The token.
        token_id: &'a str,
    },
}

impl Loss<'_> {
    fn user_id(&self) -> &str {
        match self {
            Self::User(user_id) | Self::Token { user_id, .. } => user_id,
        }
    }
}

/// The rejection: in ZITADEL's style (`COMMAND-` and a short random suffix), but ours —
/// ZITADEL has no such rule.
fn last_owner() -> DomainError {
    DomainError::failed_precondition(
        "COMMAND-sy0wnr",
        "The last active IAM owner (and its last token) cannot be deactivated, locked, removed \
         or revoked",
    )
}

impl Core {
    /// Refuses `loss` when it would take the instance's last owner that can sign in.
    pub(super) async fn keep_an_owner(&self, loss: Loss<'_>) -> Result<(), Attempt> {
        let owners: Vec<String> = self
            .store
            .members(&MemberScope::Instance)
            .await?
            .into_iter()
            .filter(|m| m.roles.iter().any(|r| r == IAM_OWNER))
            .map(|m| m.user_id)
            .collect();
        if !owners.iter().any(|id| id == loss.user_id()) {
            return Ok(());
        }
        let now = now_us();
        let mut affected_could = false;
        for owner in &owners {
            let before = self.can_sign_in(owner, None, now).await?;
            if owner != loss.user_id() {
                if before {
                    // Another owner remains: the change is safe.
                    return Ok(());
                }
                continue;
            }
            affected_could = before;
            let after = match loss {
                Loss::User(_) => false,
                Loss::Token { token_id, .. } => {
                    self.can_sign_in(owner, Some(token_id), now).await?
                }
            };
            if after {
                return Ok(());
            }
        }
        // Only a loss that takes the last usable owner away is refused; one that changes
        // nothing (no owner could sign in before) is left alone.
        if affected_could {
            return Err(Attempt::Rejected(last_owner()));
        }
        Ok(())
    }

    /// Whether `user_id` is active and has a way to sign in, not counting token `without`.
    async fn can_sign_in(
        &self,
        user_id: &str,
        without: Option<&str>,
        now: i64,
    ) -> Result<bool, Attempt> {
        let Some(user) = self.store.user(user_id).await? else {
            return Ok(false);
        };
        if user.state != UserState::Active {
            return Ok(false);
        }
        if matches!(user.kind, UserKind::Human(_)) {
            return Ok(true);
        }
        let tokens = self.store.tokens(user_id).await?;
        Ok(tokens
            .iter()
            .any(|t| Some(t.id.as_str()) != without && t.expiration_us.is_none_or(|exp| exp > now)))
    }
}
