//! User searches in PostgreSQL's dialect ([`crate::store::sql::search`] renders them): sort
//! columns that compare bytewise as SQLite does, lists bound as one array parameter.

use tokio_postgres::types::ToSql;

use crate::store::query::{TextMethod, UserSort};
use crate::store::sql::Param;
use crate::store::sql::search::Dialect;

/// PostgreSQL's SQL.
pub(super) struct Postgres;

impl Dialect for Postgres {
    fn placeholder(n: usize) -> String {
        format!("${n}")
    }

    const LOGIN_NAME: &'static str = "(CASE WHEN strpos(username, '@') > 0 THEN username ELSE \
         coalesce(username || '@' || (SELECT primary_domain FROM orgs WHERE orgs.id = users.resource_owner), username) END)";
    const TRUE: &'static str = "TRUE";
    const FALSE: &'static str = "FALSE";

    fn text_method(method: TextMethod, column: &str, p: &str) -> String {
        // left/right/strpos rather than LIKE: no escaping of % and _ needed.
        match method {
            TextMethod::Equals => format!("{column} = {p}"),
            TextMethod::StartsWith => format!("left({column}, length({p})) = {p}"),
            TextMethod::EndsWith => format!("right({column}, length({p})) = {p}"),
            TextMethod::Contains => format!("strpos({column}, {p}) > 0"),
        }
    }

    fn in_list(column: &str, values: &[String], params: &mut Vec<Param>) -> String {
        params.push(Param::TextList(values.to_vec()));
        format!("{column} = ANY({})", Self::placeholder(params.len()))
    }

    fn sort_column(sort: UserSort) -> &'static str {
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

    const ID_ORDER: &'static str = "id COLLATE \"C\"";
}

/// `param` as tokio-postgres binds it.
pub(super) fn value(param: &Param) -> Box<dyn ToSql + Sync + Send> {
    match param {
        Param::Text(text) => Box::new(text.clone()),
        Param::Bool(b) => Box::new(*b),
        Param::TextList(list) => Box::new(list.clone()),
    }
}
