//! Organizations and their members, with ZITADEL's role names and the permissions each grants.

/// The projected state of one organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    /// The org id.
    pub id: String,
    /// Its name, unique in the instance.
    pub name: String,
    /// Its primary domain (`<slug>.<external domain>`): login names end with it.
    pub primary_domain: String,
    /// The sequence of the org's last event.
    pub sequence: u64,
    /// Time of the first event (µs).
    pub created_us: i64,
    /// Time of the last event (µs).
    pub changed_us: i64,
}

impl Org {
    /// This row written over `existing`, the row of the same org: everything is this one's
    /// but the creation time, which an upsert keeps.
    pub fn replacing(&self, existing: &Org) -> Org {
        Org {
            created_us: existing.created_us,
            ..self.clone()
        }
    }
}

/// Where a membership applies: the whole instance or one organization.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MemberScope {
    /// Instance-wide (`IAM_*` roles): every org.
    Instance,
    /// One org (`ORG_*` roles).
    Org(String),
}

/// A user's roles in one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The scope.
    pub scope: MemberScope,
    /// The member's user id.
    pub user_id: String,
    /// Role names, e.g. `ORG_OWNER`.
    pub roles: Vec<String>,
}

/// A permission a method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// `user.read`.
    UserRead,
    /// `user.write`.
    UserWrite,
    /// `user.delete`.
    UserDelete,
    /// `org.read`.
    OrgRead,
    /// `org.create`.
    OrgCreate,
    /// `org.member.read`.
    OrgMemberRead,
    /// `org.member.write`.
    OrgMemberWrite,
    /// `org.member.delete`.
    OrgMemberDelete,
}

impl Permission {
    /// ZITADEL's permission name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserRead => "user.read",
            Self::UserWrite => "user.write",
            Self::UserDelete => "user.delete",
            Self::OrgRead => "org.read",
            Self::OrgCreate => "org.create",
            Self::OrgMemberRead => "org.member.read",
            Self::OrgMemberWrite => "org.member.write",
            Self::OrgMemberDelete => "org.member.delete",
        }
    }
}

/// Whether `role` grants `permission`, after ZITADEL's default role mapping (`cmd/defaults.yaml`).
pub fn role_grants(role: &str, permission: Permission) -> bool {
    use Permission::*;
    match role {
        // Instance owners and org managers may do everything we serve.
        "IAM_OWNER" | "IAM_ORG_MANAGER" => true,
        "IAM_USER_MANAGER" => {
            matches!(
                permission,
                UserRead | UserWrite | UserDelete | OrgRead | OrgMemberRead
            )
        }
        "ORG_OWNER" => true,
        "ORG_USER_MANAGER" => {
            matches!(
                permission,
                UserRead | UserWrite | UserDelete | OrgRead | OrgMemberRead
            )
        }
        // Read-only owner view.
        "ORG_OWNER_VIEWER" => matches!(permission, UserRead | OrgRead | OrgMemberRead),
        _ => false,
    }
}

/// The org roles ZITADEL defines by default; a membership may hold only these.
pub const ORG_ROLES: [&str; 3] = ["ORG_OWNER", "ORG_USER_MANAGER", "ORG_OWNER_VIEWER"];

/// The primary domain of an org named `name` under `external_domain`: lower case, runs of
/// characters other than letters and digits become one `-` (as ZITADEL derives org domains).
pub fn primary_domain(name: &str, external_domain: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for ch in name.trim().chars().flat_map(char::to_lowercase) {
        if ch.is_alphanumeric() {
            slug.push(ch);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    format!("{slug}.{external_domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_as_zitadels_defaults() {
        use Permission::*;
        let cases = [
            ("IAM_OWNER", UserWrite, true),
            ("IAM_USER_MANAGER", UserWrite, true),
            ("IAM_USER_MANAGER", OrgCreate, false),
            ("ORG_OWNER", UserWrite, true),
            ("ORG_USER_MANAGER", UserDelete, true),
            ("ORG_OWNER_VIEWER", UserRead, true),
            ("ORG_OWNER_VIEWER", UserWrite, false),
            ("SOMETHING_ELSE", UserRead, false),
        ];
        for (role, permission, want) in cases {
            assert_eq!(role_grants(role, permission), want, "{role} {permission:?}");
        }
    }

    #[test]
    fn primary_domain_is_a_slug_of_the_name() {
        assert_eq!(primary_domain("ZITADEL", "localhost"), "zitadel.localhost");
        assert_eq!(
            primary_domain("  My  Org, Inc. ", "example.com"),
            "my-org-inc.example.com"
        );
    }
}
