//! User searches in PostgreSQL's dialect ([`crate::store::sql::search`] renders them): sort
//! columns that compare bytewise as SQLite does, lists bound as one array parameter.

use tokio_postgres::types::ToSql;

use crate::store::query::TextMethod;
use crate::store::sql::{Dialect, Param};

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
    const BYTEWISE: &'static str = " COLLATE \"C\"";

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
}

/// `param` as tokio-postgres binds it.
pub(super) fn value(param: &Param) -> Box<dyn ToSql + Sync + Send> {
    match param {
        Param::Text(text) => Box::new(text.clone()),
        Param::Bool(b) => Box::new(*b),
        Param::TextList(list) => Box::new(list.clone()),
    }
}
