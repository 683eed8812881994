//! Conversions between the domain and the wire messages of v1 and v2: users, details,
//! timestamps, states (numbered differently in each generation) and search queries.

use switchyard_proto::zitadel::object::v2 as object_v2;
use switchyard_proto::zitadel::user::{v1 as user_v1, v2 as user_v2};
use switchyard_proto::zitadel::v1 as zv1;
use tonic::Status;

use crate::command::Details;
use crate::domain::user::{User, UserKind, UserState};
use crate::store::{TextMatch, TextMethod, UserFilter, UserSort};

/// µs since the epoch → `google.protobuf.Timestamp`.
pub(crate) fn timestamp(us: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: (us.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// `google.protobuf.Timestamp` → µs since the epoch.
///
/// # Errors
/// INVALID_ARGUMENT for nanos outside 0..1e9 or a time beyond what µs in an i64 hold.
pub(crate) fn timestamp_us(ts: &prost_types::Timestamp) -> Result<i64, Status> {
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(Status::invalid_argument(
            "timestamp nanos must be in 0..1e9",
        ));
    }
    ts.seconds
        .checked_mul(1_000_000)
        .and_then(|us| us.checked_add(i64::from(ts.nanos) / 1_000))
        .ok_or_else(|| Status::invalid_argument("timestamp out of range"))
}

pub(crate) fn details_v1(d: &Details) -> zv1::ObjectDetails {
    zv1::ObjectDetails {
        sequence: d.sequence,
        creation_date: Some(timestamp(d.created_us)),
        change_date: Some(timestamp(d.changed_us)),
        resource_owner: d.resource_owner.clone(),
    }
}

pub(crate) fn details_v2(d: &Details) -> object_v2::Details {
    object_v2::Details {
        sequence: d.sequence,
        creation_date: Some(timestamp(d.created_us)),
        change_date: Some(timestamp(d.changed_us)),
        resource_owner: d.resource_owner.clone(),
    }
}

/// The v1 enum: UNSPECIFIED 0, ACTIVE 1, INACTIVE 2, DELETED 3, LOCKED 4, SUSPEND 5, INITIAL 6.
pub(crate) fn state_v1(state: UserState) -> user_v1::UserState {
    match state {
        UserState::Active => user_v1::UserState::Active,
        UserState::Inactive => user_v1::UserState::Inactive,
        UserState::Deleted => user_v1::UserState::Deleted,
        UserState::Locked => user_v1::UserState::Locked,
        UserState::Initial => user_v1::UserState::Initial,
    }
}

/// The v2 enum: UNSPECIFIED 0, ACTIVE 1, INACTIVE 2, DELETED 3, LOCKED 4, INITIAL 5.
pub(crate) fn state_v2(state: UserState) -> user_v2::UserState {
    match state {
        UserState::Active => user_v2::UserState::Active,
        UserState::Inactive => user_v2::UserState::Inactive,
        UserState::Deleted => user_v2::UserState::Deleted,
        UserState::Locked => user_v2::UserState::Locked,
        UserState::Initial => user_v2::UserState::Initial,
    }
}

fn state_filter(state: Option<UserState>) -> UserFilter {
    // A state no user can be in (unspecified, v1's SUSPEND) matches nobody.
    state
        .map(UserFilter::State)
        .unwrap_or(UserFilter::InIds(Vec::new()))
}

fn state_from_v1(value: i32) -> Result<Option<UserState>, Status> {
    Ok(match user_v1::UserState::try_from(value) {
        Ok(user_v1::UserState::Active) => Some(UserState::Active),
        Ok(user_v1::UserState::Inactive) => Some(UserState::Inactive),
        Ok(user_v1::UserState::Deleted) => Some(UserState::Deleted),
        Ok(user_v1::UserState::Locked) => Some(UserState::Locked),
        Ok(user_v1::UserState::Initial) => Some(UserState::Initial),
        Ok(user_v1::UserState::Unspecified | user_v1::UserState::Suspend) => None,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "unknown user state {value}"
            )));
        }
    })
}

fn state_from_v2(value: i32) -> Result<Option<UserState>, Status> {
    Ok(match user_v2::UserState::try_from(value) {
        Ok(user_v2::UserState::Active) => Some(UserState::Active),
        Ok(user_v2::UserState::Inactive) => Some(UserState::Inactive),
        Ok(user_v2::UserState::Deleted) => Some(UserState::Deleted),
        Ok(user_v2::UserState::Locked) => Some(UserState::Locked),
        Ok(user_v2::UserState::Initial) => Some(UserState::Initial),
        Ok(user_v2::UserState::Unspecified) => None,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "unknown user state {value}"
            )));
        }
    })
}

/// A user's login names: `<user name>@<org domain>`, as ZITADEL forms them; a user name that
/// is already an email address (contains `@`) is its own login name.
fn login_names(user: &User, org_domain: &str) -> Vec<String> {
    if user.username.contains('@') || org_domain.is_empty() {
        vec![user.username.clone()]
    } else {
        vec![format!("{}@{org_domain}", user.username)]
    }
}

pub(crate) fn user_v1(user: &User, org_domain: &str) -> user_v1::User {
    let login_names = login_names(user, org_domain);
    let details = crate::command::read_details(user);
    let kind = match &user.kind {
        UserKind::Human(h) => user_v1::user::Type::Human(user_v1::Human {
            profile: Some(user_v1::Profile {
                first_name: h.first_name.clone(),
                last_name: h.last_name.clone(),
                nick_name: h.nick_name.clone(),
                display_name: h.display_name.clone(),
                preferred_language: h.preferred_language.clone(),
                gender: h.gender,
                avatar_url: String::new(),
            }),
            email: Some(user_v1::Email {
                email: h.email.clone(),
                is_email_verified: h.email_verified,
            }),
            phone: (!h.phone.is_empty()).then(|| user_v1::Phone {
                phone: h.phone.clone(),
                is_phone_verified: h.phone_verified,
            }),
            password_changed: h.password_changed_us.map(timestamp),
        }),
        UserKind::Machine(m) => user_v1::user::Type::Machine(user_v1::Machine {
            name: m.name.clone(),
            description: m.description.clone(),
            has_secret: false,
            access_token_type: m.access_token_type,
        }),
    };
    user_v1::User {
        id: user.id.clone(),
        details: Some(details_v1(&details)),
        state: state_v1(user.state) as i32,
        user_name: user.username.clone(),
        preferred_login_name: login_names[0].clone(),
        login_names,
        r#type: Some(kind),
    }
}

pub(crate) fn user_v2(user: &User, org_domain: &str) -> user_v2::User {
    let login_names = login_names(user, org_domain);
    let details = crate::command::read_details(user);
    let kind = match &user.kind {
        UserKind::Human(h) => user_v2::user::Type::Human(user_v2::HumanUser {
            user_id: user.id.clone(),
            state: state_v2(user.state) as i32,
            username: user.username.clone(),
            login_names: login_names.clone(),
            preferred_login_name: login_names[0].clone(),
            profile: Some(user_v2::HumanProfile {
                given_name: h.first_name.clone(),
                family_name: h.last_name.clone(),
                nick_name: Some(h.nick_name.clone()),
                display_name: Some(h.display_name.clone()),
                preferred_language: Some(h.preferred_language.clone()),
                gender: Some(h.gender),
                avatar_url: String::new(),
            }),
            email: Some(user_v2::HumanEmail {
                email: h.email.clone(),
                is_verified: h.email_verified,
            }),
            phone: Some(user_v2::HumanPhone {
                phone: h.phone.clone(),
                is_verified: h.phone_verified,
            }),
            password_change_required: h.password_change_required,
            password_changed: h.password_changed_us.map(timestamp),
            mfa_init_skipped: None,
        }),
        UserKind::Machine(m) => user_v2::user::Type::Machine(user_v2::MachineUser {
            name: m.name.clone(),
            description: m.description.clone(),
            has_secret: false,
            access_token_type: m.access_token_type,
        }),
    };
    user_v2::User {
        user_id: user.id.clone(),
        details: Some(details_v2(&details)),
        state: state_v2(user.state) as i32,
        username: user.username.clone(),
        preferred_login_name: login_names[0].clone(),
        login_names,
        r#type: Some(kind),
    }
}

/// `TextQueryMethod` (same numbering in v1 and v2): EQUALS 0, EQUALS_IGNORE_CASE 1,
/// STARTS_WITH 2, STARTS_WITH_IGNORE_CASE 3, CONTAINS 4, CONTAINS_IGNORE_CASE 5, ENDS_WITH 6,
/// ENDS_WITH_IGNORE_CASE 7.
pub(crate) fn text_match(value: &str, method: i32) -> Result<TextMatch, Status> {
    let (method_kind, ignore_case) = match method {
        0 => (TextMethod::Equals, false),
        1 => (TextMethod::Equals, true),
        2 => (TextMethod::StartsWith, false),
        3 => (TextMethod::StartsWith, true),
        4 => (TextMethod::Contains, false),
        5 => (TextMethod::Contains, true),
        6 => (TextMethod::EndsWith, false),
        7 => (TextMethod::EndsWith, true),
        other => {
            return Err(Status::invalid_argument(format!(
                "unknown text query method {other}"
            )));
        }
    };
    Ok(TextMatch {
        method: method_kind,
        ignore_case,
        value: value.to_owned(),
    })
}

/// Nesting deeper than this is refused rather than recursed into.
const MAX_QUERY_DEPTH: usize = 16;

fn too_deep() -> Status {
    Status::invalid_argument(format!(
        "search queries nest deeper than {MAX_QUERY_DEPTH} levels"
    ))
}

fn missing_query() -> Status {
    Status::invalid_argument("a search query must set exactly one query")
}

/// Defines `$name`, which turns one generation's `SearchQuery` into a [`UserFilter`]. v1 and
/// v2 declare the same query messages in different packages (v2 adds a few), so one body
/// serves both; `$extra` are the generation's own arms.
macro_rules! search_filter {
    ($name:ident, $pkg:ident, $state:ident, { $($extra:tt)* }) => {
        pub(crate) fn $name(q: &$pkg::SearchQuery, depth: usize) -> Result<UserFilter, Status> {
            use $pkg::search_query::Query;
            if depth > MAX_QUERY_DEPTH {
                return Err(too_deep());
            }
            let all = |qs: &[$pkg::SearchQuery]| -> Result<Vec<UserFilter>, Status> {
                qs.iter().map(|q| $name(q, depth + 1)).collect()
            };
            Ok(match q.query.as_ref().ok_or_else(missing_query)? {
                Query::UserNameQuery(x) => UserFilter::UserName(text_match(&x.user_name, x.method)?),
                Query::FirstNameQuery(x) => {
                    UserFilter::FirstName(text_match(&x.first_name, x.method)?)
                }
                Query::LastNameQuery(x) => UserFilter::LastName(text_match(&x.last_name, x.method)?),
                Query::NickNameQuery(x) => UserFilter::NickName(text_match(&x.nick_name, x.method)?),
                Query::DisplayNameQuery(x) => {
                    UserFilter::DisplayName(text_match(&x.display_name, x.method)?)
                }
                Query::EmailQuery(x) => UserFilter::Email(text_match(&x.email_address, x.method)?),
                Query::LoginNameQuery(x) => {
                    UserFilter::LoginName(text_match(&x.login_name, x.method)?)
                }
                Query::StateQuery(x) => state_filter($state(x.state)?),
                Query::TypeQuery(x) => type_filter(x.r#type)?,
                Query::InUserIdsQuery(x) => UserFilter::InIds(x.user_ids.clone()),
                Query::InUserEmailsQuery(x) => UserFilter::InEmails(x.user_emails.clone()),
                Query::OrQuery(x) => UserFilter::Or(all(&x.queries)?),
                Query::AndQuery(x) => UserFilter::And(all(&x.queries)?),
                Query::NotQuery(x) => {
                    let inner = x.query.as_deref().ok_or_else(missing_query)?;
                    UserFilter::Not(Box::new($name(inner, depth + 1)?))
                }
                $($extra)*
            })
        }
    };
}

search_filter!(filter_v1, user_v1, state_from_v1, {});
search_filter!(filter_v2, user_v2, state_from_v2, {
    Query::OrganizationIdQuery(x) => UserFilter::Org(x.organization_id.clone()),
    Query::PhoneQuery(_) => {
        return Err(Status::unimplemented("phone queries are not supported yet"));
    }
});

/// `Type` (same in v1 and v2): UNSPECIFIED 0, HUMAN 1, MACHINE 2.
fn type_filter(value: i32) -> Result<UserFilter, Status> {
    match value {
        1 => Ok(UserFilter::IsHuman(true)),
        2 => Ok(UserFilter::IsHuman(false)),
        0 => Ok(UserFilter::And(Vec::new())),
        other => Err(Status::invalid_argument(format!(
            "unknown user type {other}"
        ))),
    }
}

/// A user search from either generation's request: its queries, sorting column and paging.
///
/// # Errors
/// INVALID_ARGUMENT for a malformed query or an unknown sorting column.
pub(crate) fn user_query<Q>(
    queries: &[Q],
    to_filter: fn(&Q, usize) -> Result<UserFilter, Status>,
    sorting_column: i32,
    (offset, limit, asc): (u64, u32, bool),
) -> Result<crate::store::UserQuery, Status> {
    Ok(crate::store::UserQuery {
        filters: queries
            .iter()
            .map(|q| to_filter(q, 0))
            .collect::<Result<_, _>>()?,
        sort: sort(sorting_column)?,
        asc,
        offset,
        limit,
    })
}

/// `UserFieldName` (same in v1 and v2), 0 and 9 both sort by creation.
pub(crate) fn sort(value: i32) -> Result<UserSort, Status> {
    Ok(match value {
        0 | 9 => UserSort::CreationDate,
        1 => UserSort::UserName,
        2 => UserSort::FirstName,
        3 => UserSort::LastName,
        4 => UserSort::NickName,
        5 => UserSort::DisplayName,
        6 => UserSort::Email,
        7 => UserSort::State,
        8 => UserSort::Type,
        other => {
            return Err(Status::invalid_argument(format!(
                "unknown sorting column {other}"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_microseconds() {
        let ts = timestamp(1_700_000_000_123_456);
        assert_eq!((ts.seconds, ts.nanos), (1_700_000_000, 123_456_000));
    }

    #[test]
    fn states_use_each_generations_numbers() {
        for (state, v1, v2) in [
            (UserState::Active, 1, 1),
            (UserState::Inactive, 2, 2),
            (UserState::Deleted, 3, 3),
            (UserState::Locked, 4, 4),
            (UserState::Initial, 6, 5),
        ] {
            assert_eq!(state_v1(state) as i32, v1, "{state:?}");
            assert_eq!(state_v2(state) as i32, v2, "{state:?}");
            assert_eq!(state_from_v1(v1).expect("v1"), Some(state));
            assert_eq!(state_from_v2(v2).expect("v2"), Some(state));
        }
        assert_eq!(state_from_v1(5).expect("suspend"), None);
        assert!(state_from_v2(6).is_err(), "v2 has no 6");
    }

    #[test]
    fn text_methods_cover_the_enum() {
        let cases = [
            (0, TextMethod::Equals, false),
            (1, TextMethod::Equals, true),
            (2, TextMethod::StartsWith, false),
            (3, TextMethod::StartsWith, true),
            (4, TextMethod::Contains, false),
            (5, TextMethod::Contains, true),
            (6, TextMethod::EndsWith, false),
            (7, TextMethod::EndsWith, true),
        ];
        for (n, method, ignore_case) in cases {
            let m = text_match("x", n).expect("known");
            assert_eq!((m.method, m.ignore_case), (method, ignore_case), "{n}");
        }
        assert!(text_match("x", 8).is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut q = user_v1::SearchQuery {
            query: Some(user_v1::search_query::Query::StateQuery(
                user_v1::StateQuery { state: 1 },
            )),
        };
        for _ in 0..40 {
            q = user_v1::SearchQuery {
                query: Some(user_v1::search_query::Query::NotQuery(Box::new(
                    user_v1::NotQuery {
                        query: Some(Box::new(q)),
                    },
                ))),
            };
        }
        assert_eq!(
            filter_v1(&q, 0).expect_err("too deep").code(),
            tonic::Code::InvalidArgument
        );
    }
}
