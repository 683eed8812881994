//! User and member searches as SQL: the filter tree of [`crate::store::query`] rendered as a
//! condition with numbered parameters, the count and page statements around it, the default and
//! maximum page sizes. What differs between SQLite and PostgreSQL is a [`Dialect`]; everything
//! else is here.

use super::rows::{MEMBER_COLUMNS, USER_COLUMNS};
use super::{Dialect, Param};
use crate::store::query::{MemberQuery, TextMatch, UserFilter, UserQuery, UserSort};
use crate::store::scope::scope_key;

/// Default and maximum page sizes of a user search, as ZITADEL's defaults.
pub(crate) const DEFAULT_LIMIT: u32 = 100;
/// See [`DEFAULT_LIMIT`].
pub(crate) const MAX_LIMIT: u32 = 1000;

/// A search rendered for one dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Search {
    /// `SELECT count(*)` of every match.
    pub(crate) count: String,
    /// The page: `columns` of the matches, sorted, limited and offset.
    pub(crate) page: String,
    /// The parameters of both statements, in placeholder order.
    pub(crate) params: Vec<Param>,
}

/// Renders `query` over the `users` table, selecting `columns` for the page. Deleted users
/// never match.
pub(crate) fn user_search<D: Dialect>(query: &UserQuery, columns: &str) -> Search {
    let mut params = Vec::new();
    let where_clause = where_clause::<D>(
        "state <> 'deleted'",
        &query.filters,
        Source::Users,
        &mut params,
    );
    let limit = match query.limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    };
    let direction = if query.asc { "ASC" } else { "DESC" };
    Search {
        count: format!("SELECT count(*) FROM users WHERE {where_clause}"),
        page: format!(
            "SELECT {columns} FROM users WHERE {where_clause} ORDER BY {} {direction}, id{} \
             {direction} LIMIT {limit} OFFSET {}",
            sort_column::<D>(query.sort),
            D::BYTEWISE,
            query.offset.min(i64::MAX as u64),
        ),
        params,
    }
}

/// The members of a scope joined with their users: a user that is gone or deleted joins as
/// NULLs.
const MEMBERS_WITH_USERS: &str = "members LEFT JOIN users ON users.id = members.user_id \
     AND users.state <> 'deleted'";

/// Renders `query` over the members of its scope with their users, selecting
/// [`MEMBER_COLUMNS`] and then [`USER_COLUMNS`] for the page (as
/// [`super::rows::member_with_user`] reads them).
pub(crate) fn member_search<D: Dialect>(query: &MemberQuery) -> Search {
    let mut params = vec![Param::Text(scope_key(&query.scope))];
    let where_clause = where_clause::<D>(
        &format!("members.scope = {}", D::placeholder(1)),
        &query.filters,
        Source::Members,
        &mut params,
    );
    // No page size is every member; both dialects take a LIMIT as large as this.
    let limit = match query.limit {
        0 => i64::MAX as u64,
        n => u64::from(n),
    };
    Search {
        count: format!("SELECT count(*) FROM {MEMBERS_WITH_USERS} WHERE {where_clause}"),
        page: format!(
            "SELECT {MEMBER_COLUMNS}, {USER_COLUMNS} FROM {MEMBERS_WITH_USERS} \
             WHERE {where_clause} ORDER BY members.user_id{} LIMIT {limit} OFFSET {}",
            D::BYTEWISE,
            query.offset.min(i64::MAX as u64),
        ),
        params,
    }
}

/// `first` and every filter over `source`, all to hold.
fn where_clause<D: Dialect>(
    first: &str,
    filters: &[UserFilter],
    source: Source,
    params: &mut Vec<Param>,
) -> String {
    let mut conditions = vec![first.to_owned()];
    for filter in filters {
        conditions.push(format!("({})", render::<D>(filter, source, params)));
    }
    conditions.join(" AND ")
}

/// Whose columns a filter compares.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The `users` table's own.
    Users,
    /// A member's user, LEFT JOINed: a member without one compares as an empty profile.
    Members,
}

impl Source {
    /// The expression `column` of the user, or `empty` for a member without one.
    fn column(self, column: &str, empty: &str) -> String {
        match self {
            Self::Users => column.to_owned(),
            Self::Members => format!("coalesce({column}, {empty})"),
        }
    }

    /// The user id: a member's own even without a user.
    fn id(self) -> &'static str {
        match self {
            Self::Users => "id",
            Self::Members => "members.user_id",
        }
    }
}

/// The ORDER BY expression of `sort`, text ordering bytewise.
fn sort_column<D: Dialect>(sort: UserSort) -> String {
    let text = match sort {
        UserSort::CreationDate => return "created_us".to_owned(),
        UserSort::Type => return "is_human".to_owned(),
        UserSort::UserName => "username",
        UserSort::FirstName => "first_name",
        UserSort::LastName => "last_name",
        UserSort::NickName => "nick_name",
        UserSort::DisplayName => "display_name",
        UserSort::Email => "email",
        UserSort::State => "state",
    };
    format!("{text}{}", D::BYTEWISE)
}

/// Binds `param` and returns its placeholder.
fn bind<D: Dialect>(param: Param, params: &mut Vec<Param>) -> String {
    params.push(param);
    D::placeholder(params.len())
}

/// Renders `filter` over the columns of `source` as a condition, appending its parameters to
/// `params`.
fn render<D: Dialect>(filter: &UserFilter, source: Source, params: &mut Vec<Param>) -> String {
    let text = |column: &str, m: &TextMatch, params: &mut Vec<Param>| -> String {
        let column = source.column(column, "''");
        let (column, value) = if m.ignore_case {
            (format!("lower({column})"), m.value.to_lowercase())
        } else {
            (column, m.value.clone())
        };
        let p = bind::<D>(Param::Text(value), params);
        D::text_method(m.method, &column, &p)
    };
    match filter {
        UserFilter::UserName(m) => text("username", m, params),
        UserFilter::LoginName(m) => text(D::LOGIN_NAME, m, params),
        UserFilter::FirstName(m) => text("first_name", m, params),
        UserFilter::LastName(m) => text("last_name", m, params),
        UserFilter::NickName(m) => text("nick_name", m, params),
        UserFilter::DisplayName(m) => text("display_name", m, params),
        UserFilter::Email(m) => text("email", m, params),
        UserFilter::State(state) => {
            format!(
                "{} = {}",
                source.column("state", "''"),
                bind::<D>(Param::Text(state.as_str().to_owned()), params)
            )
        }
        UserFilter::IsHuman(human) => {
            format!(
                "{} = {}",
                source.column("is_human", D::FALSE),
                bind::<D>(Param::Bool(*human), params)
            )
        }
        UserFilter::Org(org) => {
            format!(
                "{} = {}",
                source.column("resource_owner", "''"),
                bind::<D>(Param::Text(org.clone()), params)
            )
        }
        UserFilter::InIds(values) | UserFilter::InEmails(values) => {
            let column = if matches!(filter, UserFilter::InIds(_)) {
                source.id().to_owned()
            } else {
                source.column("email", "''")
            };
            if values.is_empty() {
                return D::FALSE.to_owned();
            }
            D::in_list(&column, values, params)
        }
        UserFilter::And(parts) | UserFilter::Or(parts) => {
            let (joiner, empty) = if matches!(filter, UserFilter::And(_)) {
                (" AND ", D::TRUE)
            } else {
                (" OR ", D::FALSE)
            };
            if parts.is_empty() {
                return empty.to_owned();
            }
            let rendered: Vec<String> = parts
                .iter()
                .map(|p| format!("({})", render::<D>(p, source, params)))
                .collect();
            rendered.join(joiner)
        }
        UserFilter::Not(inner) => format!("NOT ({})", render::<D>(inner, source, params)),
    }
}
