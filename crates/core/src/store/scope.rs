//! Membership scopes as the stores key them: `instance`, or `org:<id>`. One encoding for every
//! backend (the SQL columns and the memory store's maps), so an export from one imports into
//! another.

use crate::domain::org::MemberScope;

/// The key of `scope`.
pub(crate) fn scope_key(scope: &MemberScope) -> String {
    match scope {
        MemberScope::Instance => "instance".to_owned(),
        MemberScope::Org(id) => format!("org:{id}"),
    }
}

/// The scope of `key`; `None` for a key [`scope_key`] never writes.
pub(crate) fn parse_scope(key: &str) -> Option<MemberScope> {
    if key == "instance" {
        Some(MemberScope::Instance)
    } else {
        key.strip_prefix("org:")
            .map(|id| MemberScope::Org(id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for scope in [MemberScope::Instance, MemberScope::Org("123".into())] {
            assert_eq!(parse_scope(&scope_key(&scope)), Some(scope));
        }
        assert_eq!(parse_scope("team:1"), None);
    }
}
