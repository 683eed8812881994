//! User searches as SQL: the filter tree of [`crate::store::query`] rendered as a condition with
//! numbered parameters, the count and page statements around it, the default and maximum page
//! sizes. What differs between SQLite and PostgreSQL is a [`Dialect`]; everything else is here.

use super::{Dialect, Param};
use crate::store::query::{TextMatch, UserFilter, UserQuery, UserSort};

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
    let mut conditions = vec!["state <> 'deleted'".to_owned()];
    for filter in &query.filters {
        conditions.push(format!("({})", render::<D>(filter, &mut params)));
    }
    let where_clause = conditions.join(" AND ");
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

/// Renders `filter` as a condition, appending its parameters to `params`.
fn render<D: Dialect>(filter: &UserFilter, params: &mut Vec<Param>) -> String {
    let text = |column: &str, m: &TextMatch, params: &mut Vec<Param>| -> String {
        let (column, value) = if m.ignore_case {
            (format!("lower({column})"), m.value.to_lowercase())
        } else {
            (column.to_owned(), m.value.clone())
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
                "state = {}",
                bind::<D>(Param::Text(state.as_str().to_owned()), params)
            )
        }
        UserFilter::IsHuman(human) => {
            format!("is_human = {}", bind::<D>(Param::Bool(*human), params))
        }
        UserFilter::Org(org) => {
            format!(
                "resource_owner = {}",
                bind::<D>(Param::Text(org.clone()), params)
            )
        }
        UserFilter::InIds(values) | UserFilter::InEmails(values) => {
            let column = if matches!(filter, UserFilter::InIds(_)) {
                "id"
            } else {
                "email"
            };
            if values.is_empty() {
                return D::FALSE.to_owned();
            }
            D::in_list(column, values, params)
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
                .map(|p| format!("({})", render::<D>(p, params)))
                .collect();
            rendered.join(joiner)
        }
        UserFilter::Not(inner) => format!("NOT ({})", render::<D>(inner, params)),
    }
}
