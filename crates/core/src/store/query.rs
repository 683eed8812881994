//! User and member searches as data: a filter tree, sorting and paging, independent of any SQL
//! dialect; and the one text comparison ([`TextMatch::matches`]) the memory store evaluates.

use crate::domain::org::MemberScope;
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

impl TextMatch {
    /// Whether `value` matches, as the SQL backends compare (an empty value starts, ends and
    /// is contained in every text; it equals only the empty one).
    pub fn matches(&self, value: &str) -> bool {
        use std::borrow::Cow;
        let (value, wanted) = if self.ignore_case {
            (
                Cow::Owned(value.to_lowercase()),
                Cow::Owned(self.value.to_lowercase()),
            )
        } else {
            (Cow::Borrowed(value), Cow::Borrowed(self.value.as_str()))
        };
        match self.method {
            TextMethod::Equals => value == wanted,
            TextMethod::StartsWith => value.starts_with(wanted.as_ref()),
            TextMethod::EndsWith => value.ends_with(wanted.as_ref()),
            TextMethod::Contains => value.contains(wanted.as_ref()),
        }
    }
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

/// A search of one scope's members, each with its user, ordered by user id (bytewise).
///
/// The filters (all must hold) compare the member's user; a member whose user is gone or
/// deleted is still listed and compares as an empty profile (empty texts, no state, not human,
/// no org). [`UserFilter::InIds`] compares the member's user id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberQuery {
    /// The scope whose members are listed.
    pub scope: MemberScope,
    /// Conditions, all of which must hold.
    pub filters: Vec<UserFilter>,
    /// Members to skip.
    pub offset: u64,
    /// Page size; 0 means every member.
    pub limit: u32,
}
