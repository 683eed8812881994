//! User searches in SQLite's dialect ([`crate::store::sql::search`] renders them).

use crate::store::query::TextMethod;
use crate::store::sql::{Dialect, Param};

/// SQLite's SQL.
pub(super) struct Sqlite;

impl Dialect for Sqlite {
    fn placeholder(n: usize) -> String {
        format!("?{n}")
    }

    const LOGIN_NAME: &'static str = "(CASE WHEN instr(username, '@') > 0 THEN username ELSE \
         coalesce(username || '@' || (SELECT primary_domain FROM orgs WHERE orgs.id = users.resource_owner), username) END)";
    const TRUE: &'static str = "1";
    const FALSE: &'static str = "0";
    const BYTEWISE: &'static str = "";

    fn text_method(method: TextMethod, column: &str, p: &str) -> String {
        // substr/instr rather than LIKE: LIKE is case-insensitive in SQLite and needs escaping.
        match method {
            TextMethod::Equals => format!("{column} = {p}"),
            TextMethod::StartsWith => format!("substr({column}, 1, length({p})) = {p}"),
            // substr(x, -0) is all of x: an empty suffix needs its own case.
            TextMethod::EndsWith => {
                format!("(length({p}) = 0 OR substr({column}, -length({p})) = {p})")
            }
            TextMethod::Contains => format!("instr({column}, {p}) > 0"),
        }
    }

    fn in_list(column: &str, values: &[String], params: &mut Vec<Param>) -> String {
        // No array parameters in SQLite: one placeholder a value.
        let placeholders: Vec<String> = values
            .iter()
            .map(|v| {
                params.push(Param::Text(v.clone()));
                Self::placeholder(params.len())
            })
            .collect();
        format!("{column} IN ({})", placeholders.join(", "))
    }
}

/// `param` as rusqlite binds it.
pub(super) fn value(param: &Param) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match param {
        Param::Text(text) => Value::Text(text.clone()),
        Param::Bool(b) => Value::Integer(i64::from(*b)),
        // Never rendered for SQLite ([`Sqlite::in_list`] expands lists); bound as JSON text
        // all the same rather than panicking.
        Param::TextList(list) => Value::Text(serde_json::Value::from(list.clone()).to_string()),
    }
}
