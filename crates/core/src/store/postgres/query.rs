//! User searches in PostgreSQL's dialect: filters as `$n`-parameterised conditions, sort
//! columns that compare bytewise as SQLite does.

use tokio_postgres::types::ToSql;

use crate::store::query::{TextMatch, TextMethod, UserFilter, UserSort};

/// Query parameters of a rendered filter, in `$n` order.
/// The login name as SQL (see [`UserFilter::LoginName`]); concatenating a missing org's NULL
/// domain gives NULL, so such a user's login name falls back to its user name.
const LOGIN_NAME: &str = "(CASE WHEN strpos(username, '@') > 0 THEN username ELSE \
     coalesce(username || '@' || (SELECT primary_domain FROM orgs WHERE orgs.id = users.resource_owner), username) END)";

pub(super) type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// Renders a filter as a SQL condition with `$n` parameters appended to `args`.
pub(super) fn render_filter(filter: &UserFilter, args: &mut Params) -> String {
    fn text(column: &str, m: &TextMatch, args: &mut Params) -> String {
        let (col, value) = if m.ignore_case {
            (format!("lower({column})"), m.value.to_lowercase())
        } else {
            (column.to_owned(), m.value.clone())
        };
        args.push(Box::new(value));
        let p = format!("${}", args.len());
        // left/right/strpos rather than LIKE: no escaping of % and _ needed.
        match m.method {
            TextMethod::Equals => format!("{col} = {p}"),
            TextMethod::StartsWith => format!("left({col}, length({p})) = {p}"),
            TextMethod::EndsWith => format!("right({col}, length({p})) = {p}"),
            TextMethod::Contains => format!("strpos({col}, {p}) > 0"),
        }
    }
    match filter {
        UserFilter::UserName(m) => text("username", m, args),
        UserFilter::LoginName(m) => text(LOGIN_NAME, m, args),
        UserFilter::FirstName(m) => text("first_name", m, args),
        UserFilter::LastName(m) => text("last_name", m, args),
        UserFilter::NickName(m) => text("nick_name", m, args),
        UserFilter::DisplayName(m) => text("display_name", m, args),
        UserFilter::Email(m) => text("email", m, args),
        UserFilter::State(state) => {
            args.push(Box::new(state.as_str().to_owned()));
            format!("state = ${}", args.len())
        }
        UserFilter::IsHuman(human) => {
            args.push(Box::new(*human));
            format!("is_human = ${}", args.len())
        }
        UserFilter::Org(org) => {
            args.push(Box::new(org.clone()));
            format!("resource_owner = ${}", args.len())
        }
        UserFilter::InIds(values) => {
            args.push(Box::new(values.clone()));
            format!("id = ANY(${})", args.len())
        }
        UserFilter::InEmails(values) => {
            args.push(Box::new(values.clone()));
            format!("email = ANY(${})", args.len())
        }
        UserFilter::And(parts) | UserFilter::Or(parts) => {
            let (joiner, empty) = if matches!(filter, UserFilter::And(_)) {
                (" AND ", "TRUE")
            } else {
                (" OR ", "FALSE")
            };
            if parts.is_empty() {
                return empty.to_owned();
            }
            let rendered: Vec<String> = parts
                .iter()
                .map(|p| format!("({})", render_filter(p, args)))
                .collect();
            rendered.join(joiner)
        }
        UserFilter::Not(inner) => format!("NOT ({})", render_filter(inner, args)),
    }
}

/// The ORDER BY expression; text compares bytewise (`COLLATE "C"`), as SQLite does.
pub(super) fn sort_column(sort: UserSort) -> &'static str {
    match sort {
        UserSort::CreationDate => "created_us",
        UserSort::UserName => "username COLLATE \"C\"",
        UserSort::FirstName => "first_name COLLATE \"C\"",
        UserSort::LastName => "last_name COLLATE \"C\"",
        UserSort::NickName => "nick_name COLLATE \"C\"",
        UserSort::DisplayName => "display_name COLLATE \"C\"",
        UserSort::Email => "email COLLATE \"C\"",
        UserSort::State => "state COLLATE \"C\"",
        UserSort::Type => "is_human",
    }
}
