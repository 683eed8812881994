//! User searches as data: a filter tree, sorting and paging, independent of any SQL dialect.

use crate::domain::user::UserState;

/// How a text filter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMethod {
    /// Equal.
    Equals,
    /// Starts with.
    StartsWith,
    /// Contains.
    Contains,
    /// Ends with.
    EndsWith,
}

/// A text comparison: method, case sensitivity and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMatch {
    /// How to compare.
    pub method: TextMethod,
    /// Compare case-insensitively.
    pub ignore_case: bool,
    /// The value to compare with.
    pub value: String,
}

/// A filter over users; leaves compare one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserFilter {
    /// The user name.
    UserName(TextMatch),
    /// The login name: the user name if it is an email address (contains `@`), else
    /// `<user name>@<org primary domain>`.
    LoginName(TextMatch),
    /// A human's first name.
    FirstName(TextMatch),
    /// A human's last name.
    LastName(TextMatch),
    /// A human's nick name.
    NickName(TextMatch),
    /// The display name (machines: their name).
    DisplayName(TextMatch),
    /// A human's email.
    Email(TextMatch),
    /// The state.
    State(UserState),
    /// Human (`true`) or machine (`false`).
    IsHuman(bool),
    /// One of these ids.
    InIds(Vec<String>),
    /// One of these emails (exact).
    InEmails(Vec<String>),
    /// Owned by this org.
    Org(String),
    /// All of these.
    And(Vec<UserFilter>),
    /// Any of these.
    Or(Vec<UserFilter>),
    /// Not this.
    Not(Box<UserFilter>),
}

/// The column to sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserSort {
    /// Creation time (the default).
    #[default]
    CreationDate,
    /// User name.
    UserName,
    /// First name.
    FirstName,
    /// Last name.
    LastName,
    /// Nick name.
    NickName,
    /// Display name.
    DisplayName,
    /// Email.
    Email,
    /// State.
    State,
    /// Type.
    Type,
}

/// A search: filter (all must hold), sort, paging.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserQuery {
    /// Conditions, all of which must hold.
    pub filters: Vec<UserFilter>,
    /// Sort column.
    pub sort: UserSort,
    /// Ascending.
    pub asc: bool,
    /// Rows to skip.
    pub offset: u64,
    /// Page size; 0 means the default.
    pub limit: u32,
}
