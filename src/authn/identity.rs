//! Who the caller is, as established from a verified token.

use std::sync::Arc;

use http::HeaderValue;

/// Street Manager roles (access-and-permissions.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Role {
    Admin = 0,
    Planner = 1,
    HighwayAuthority = 2,
    Contractor = 3,
    Api = 4,
    Ui = 5,
    DataExport = 6,
    StreetWorksAdmin = 7,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Admin,
        Role::Planner,
        Role::HighwayAuthority,
        Role::Contractor,
        Role::Api,
        Role::Ui,
        Role::DataExport,
        Role::StreetWorksAdmin,
    ];

    pub fn parse(name: &str) -> Option<Role> {
        Some(match name {
            "Admin" => Role::Admin,
            "Planner" => Role::Planner,
            "HighwayAuthority" => Role::HighwayAuthority,
            "Contractor" => Role::Contractor,
            "API" => Role::Api,
            "UI" => Role::Ui,
            "DataExport" => Role::DataExport,
            "StreetWorksAdmin" => Role::StreetWorksAdmin,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::Planner => "Planner",
            Role::HighwayAuthority => "HighwayAuthority",
            Role::Contractor => "Contractor",
            Role::Api => "API",
            Role::Ui => "UI",
            Role::DataExport => "DataExport",
            Role::StreetWorksAdmin => "StreetWorksAdmin",
        }
    }
}

/// A set of roles as a bitmask: checking "any of" is one AND.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RoleSet(u8);

/// Groups in which at most one role may be held.
const EXCLUSIVE_GROUPS: [&[Role]; 4] = [
    &[
        Role::Planner,
        Role::HighwayAuthority,
        Role::Contractor,
        Role::DataExport,
    ],
    &[Role::Ui, Role::Api],
    &[Role::Admin, Role::Api],
    &[Role::Contractor, Role::StreetWorksAdmin],
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error("unknown role {0:?}")]
    Unknown(String),
    #[error("roles {0} and {1} are mutually exclusive")]
    Exclusive(&'static str, &'static str),
    #[error("StreetWorksAdmin must be held with Admin, Planner or HighwayAuthority")]
    StreetWorksAdminAlone,
}

impl RoleSet {
    pub const EMPTY: RoleSet = RoleSet(0);

    pub fn of(roles: &[Role]) -> RoleSet {
        roles.iter().fold(RoleSet::EMPTY, |s, r| s.with(*r))
    }

    pub fn with(self, role: Role) -> RoleSet {
        RoleSet(self.0 | 1 << role as u8)
    }

    pub fn contains(self, role: Role) -> bool {
        self.0 & (1 << role as u8) != 0
    }

    pub fn intersects(self, other: RoleSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// Parses role names from a token and enforces the exclusivity rules; a token breaking
    /// them is not a valid identity.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<RoleSet, RoleError> {
        let mut set = RoleSet::EMPTY;
        for name in names {
            let role = Role::parse(name).ok_or_else(|| RoleError::Unknown(name.to_owned()))?;
            set = set.with(role);
        }
        set.validate()?;
        Ok(set)
    }

    pub fn validate(self) -> Result<(), RoleError> {
        for group in EXCLUSIVE_GROUPS {
            let mut held = group.iter().filter(|r| self.contains(**r));
            if let (Some(a), Some(b)) = (held.next(), held.next()) {
                return Err(RoleError::Exclusive(a.as_str(), b.as_str()));
            }
        }
        if self.contains(Role::StreetWorksAdmin)
            && !self.intersects(RoleSet::of(&[
                Role::Admin,
                Role::Planner,
                Role::HighwayAuthority,
            ]))
        {
            return Err(RoleError::StreetWorksAdminAlone);
        }
        Ok(())
    }

    /// Comma-separated names, as forwarded in `x-streetgate-roles`.
    pub fn header_value(self) -> String {
        let names: Vec<&str> = self.iter().map(Role::as_str).collect();
        names.join(",")
    }
}

/// A verified caller. Shared (`Arc`) between the token cache and in-flight requests.
/// Built only by `Identity::new`, so every identity carries the header values it is forwarded
/// with: one whose claims cannot travel as headers never exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: Arc<str>,
    /// SWA code of the caller's own organisation (token claim).
    pub organisation: Arc<str>,
    pub roles: RoleSet,
    /// `iat`, seconds since the epoch; checked against `tokens_valid_after`.
    pub issued_at: Option<u64>,
    /// `exp`, seconds since the epoch; the cache entry dies with it.
    pub expires_at: u64,
    /// The third-party integrator acting through this user's account (seed 002), if any.
    pub integrator: Option<Arc<str>>,
    headers: IdentityHeaders,
}

/// The identity headers, validated once at authentication and cloned (a reference count) per
/// request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    pub user: HeaderValue,
    pub organisation: HeaderValue,
    pub roles: HeaderValue,
    /// Forwarded as `x-streetgate-integrator`.
    pub integrator: Option<HeaderValue>,
}

/// Longest subject or organisation forwarded as a header.
pub const MAX_IDENTITY_VALUE_BYTES: usize = 256;

/// Why a claim cannot be an identity header (the token is then refused: `token_claims`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("{claim} is empty")]
    Empty { claim: &'static str },
    #[error("{claim} is over {MAX_IDENTITY_VALUE_BYTES} bytes")]
    TooLong { claim: &'static str },
    #[error("{claim} holds a character other than visible ASCII and inner spaces")]
    NotHeaderSafe { claim: &'static str },
}

impl Identity {
    pub fn new(
        subject: &str,
        organisation: &str,
        roles: RoleSet,
        issued_at: Option<u64>,
        expires_at: u64,
    ) -> Result<Identity, IdentityError> {
        let headers = IdentityHeaders {
            user: header_value("subject", subject)?,
            organisation: header_value("organisation", organisation)?,
            roles: HeaderValue::from_str(&roles.header_value())
                .map_err(|_| IdentityError::NotHeaderSafe { claim: "roles" })?,
            integrator: None,
        };
        Ok(Identity {
            subject: Arc::from(subject),
            organisation: Arc::from(organisation),
            roles,
            issued_at,
            expires_at,
            integrator: None,
            headers,
        })
    }

    /// The same identity acting through `integrator`, which must travel as a header too.
    pub fn with_integrator(mut self, integrator: &str) -> Result<Identity, IdentityError> {
        self.headers.integrator = Some(header_value("integrator", integrator)?);
        self.integrator = Some(Arc::from(integrator));
        Ok(self)
    }

    pub fn headers(&self) -> &IdentityHeaders {
        &self.headers
    }
}

/// A claim as a header value that every upstream parser reads back byte for byte: visible
/// ASCII and inner spaces only. No control characters (CR/LF would split the header), no
/// obs-text (parsers disagree on Latin-1 vs UTF-8), and no leading or trailing space (parsers
/// trim it, so " alice" would arrive as "alice").
fn header_value(claim: &'static str, value: &str) -> Result<HeaderValue, IdentityError> {
    if value.is_empty() {
        return Err(IdentityError::Empty { claim });
    }
    if value.len() > MAX_IDENTITY_VALUE_BYTES {
        return Err(IdentityError::TooLong { claim });
    }
    let safe = value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ');
    if !safe {
        return Err(IdentityError::NotHeaderSafe { claim });
    }
    HeaderValue::from_str(value).map_err(|_| IdentityError::NotHeaderSafe { claim })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusivity_groups() {
        assert!(RoleSet::from_names(["Planner", "API"]).is_ok());
        assert!(RoleSet::from_names(["Admin", "UI", "StreetWorksAdmin"]).is_ok());
        assert!(RoleSet::from_names(["HighwayAuthority", "StreetWorksAdmin", "UI"]).is_ok());
        assert_eq!(
            RoleSet::from_names(["Planner", "Contractor"]),
            Err(RoleError::Exclusive("Planner", "Contractor"))
        );
        assert!(RoleSet::from_names(["UI", "API"]).is_err());
        assert!(RoleSet::from_names(["Admin", "API"]).is_err());
        assert!(RoleSet::from_names(["DataExport", "HighwayAuthority"]).is_err());
        assert!(RoleSet::from_names(["Contractor", "StreetWorksAdmin"]).is_err());
        assert_eq!(
            RoleSet::from_names(["StreetWorksAdmin", "UI"]),
            Err(RoleError::StreetWorksAdminAlone)
        );
        assert_eq!(
            RoleSet::from_names(["Superuser"]),
            Err(RoleError::Unknown("Superuser".into()))
        );
    }

    #[test]
    fn identity_claims_must_be_header_safe() {
        let roles = RoleSet::of(&[Role::Planner]);
        let ok = Identity::new("alice@example.com", "7001", roles, None, 1).unwrap();
        assert_eq!(ok.headers().user, "alice@example.com");
        assert_eq!(ok.headers().roles, "Planner");
        for bad in [
            "",
            " alice",
            "alice ",
            "al\rice",
            "al\nice",
            "al\tice",
            "al\u{0}ice",
            "al\u{7f}ice",
            "alicé",
            "ali\u{2028}ce",
        ] {
            assert!(
                Identity::new(bad, "7001", roles, None, 1).is_err(),
                "{bad:?}"
            );
        }
        let long = "a".repeat(MAX_IDENTITY_VALUE_BYTES + 1);
        assert!(Identity::new(&long, "7001", roles, None, 1).is_err());
        assert!(Identity::new("a", "70\n1", roles, None, 1).is_err());
    }

    #[test]
    fn header_value_lists_roles() {
        let set = RoleSet::from_names(["UI", "Planner"]).unwrap();
        assert_eq!(set.header_value(), "Planner,UI");
    }
}
