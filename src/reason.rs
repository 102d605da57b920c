//! Stable, machine-readable reason codes. Every decision and every rejection carries one; they
//! appear in response bodies, the decision log and the `reason` metric label, so renaming one is
//! a breaking change (the README lists them).

use http::StatusCode;

macro_rules! reasons {
    ($( $(#[$doc:meta])* $variant:ident => ($code:literal, $status:expr) ),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $( $(#[$doc])* $variant, )*
        }

        impl Reason {
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),*];

            pub const fn as_str(self) -> &'static str {
                match self { $( Reason::$variant => $code, )* }
            }

            /// The HTTP status a rejection with this reason answers (allow reasons: 200).
            pub const fn status(self) -> StatusCode {
                match self { $( Reason::$variant => $status, )* }
            }
        }
    };
}

reasons! {
    // --- allowed ---
    /// The route is public.
    Public => ("public", StatusCode::OK),
    /// The caller holds one of the route's roles and the route needs nothing more.
    RoleGranted => ("role_granted", StatusCode::OK),
    /// Workstream grant read-only or full-write covers a read.
    WorkstreamRead => ("workstream_read", StatusCode::OK),
    /// Workstream grant full-write covers a write.
    WorkstreamWrite => ("workstream_write", StatusCode::OK),
    /// Highway authorities read every work.
    AuthorityRead => ("authority_read", StatusCode::OK),
    /// Highway authority writing on a work whose authority is its own organisation.
    AuthorityOwnWork => ("authority_own_work", StatusCode::OK),
    /// Permit, activity or forward-plan details reached from the map.
    MapView => ("map_view", StatusCode::OK),
    /// Admin acting on its own organisation.
    OwnOrganisation => ("own_organisation", StatusCode::OK),
    /// Response rows are filtered to the caller's workstreams.
    FilteredRows => ("filtered_rows", StatusCode::OK),
    /// Contracts model: the caller's party and role on the contract hold the permission.
    ContractPermission => ("contract_permission", StatusCode::OK),
    /// Contracts model: the caller's user type reads the contract without membership.
    UserTypeRead => ("user_type_read", StatusCode::OK),
    /// Contracts model: the caller's user type holds the system permission.
    SystemPermission => ("system_permission", StatusCode::OK),

    // --- 400: the request itself is wrong ---
    /// Dot segments, encoded slash/dot/backslash, NUL, bad percent-encoding or UTF-8.
    BadPath => ("bad_path", StatusCode::BAD_REQUEST),
    /// Absolute-form target naming another host, or another non-origin form.
    BadTarget => ("bad_target", StatusCode::BAD_REQUEST),
    /// Missing or repeated Host header.
    BadHost => ("bad_host", StatusCode::BAD_REQUEST),
    /// Both Content-Length and Transfer-Encoding, repeated or invalid Content-Length.
    BadFraming => ("bad_framing", StatusCode::BAD_REQUEST),
    /// A malformed query string.
    BadQuery => ("bad_query", StatusCode::BAD_REQUEST),
    /// `swaCode` given more than once, or not a SWA code.
    SwaCodeInvalid => ("swa_code_invalid", StatusCode::BAD_REQUEST),
    /// The default workstream "000" named when creating.
    DefaultWorkstream => ("default_workstream", StatusCode::BAD_REQUEST),
    /// The request body the rule reads is missing, not strict JSON (duplicate keys, trailing
    /// bytes), lacks the field, or has it with the wrong JSON type.
    BadBody => ("bad_body", StatusCode::BAD_REQUEST),

    // --- 401: who are you? ---
    TokenMissing => ("token_missing", StatusCode::UNAUTHORIZED),
    TokenMalformed => ("token_malformed", StatusCode::UNAUTHORIZED),
    TokenTooLarge => ("token_too_large", StatusCode::UNAUTHORIZED),
    /// `alg` not on the allow-list (including `none` and HS/RS confusion).
    TokenAlgorithm => ("token_algorithm", StatusCode::UNAUTHORIZED),
    /// No key with the token's `kid`.
    TokenUnknownKey => ("token_unknown_key", StatusCode::UNAUTHORIZED),
    TokenSignature => ("token_signature", StatusCode::UNAUTHORIZED),
    TokenExpired => ("token_expired", StatusCode::UNAUTHORIZED),
    TokenNotYetValid => ("token_not_yet_valid", StatusCode::UNAUTHORIZED),
    TokenIssuer => ("token_issuer", StatusCode::UNAUTHORIZED),
    TokenAudience => ("token_audience", StatusCode::UNAUTHORIZED),
    /// Required claims missing or of the wrong type, or an unknown `crit` header.
    TokenClaims => ("token_claims", StatusCode::UNAUTHORIZED),
    /// Roles unknown or breaking the exclusivity groups.
    TokenRoles => ("token_roles", StatusCode::UNAUTHORIZED),
    /// Issued before the user's `tokens_valid_after`.
    TokenRevoked => ("token_revoked", StatusCode::UNAUTHORIZED),
    /// The caller's organisation, or the one it acts for, is suspended.
    OrganisationSuspended => ("organisation_suspended", StatusCode::UNAUTHORIZED),

    // --- 403: known, but not allowed ---
    RoleNotPermitted => ("role_not_permitted", StatusCode::FORBIDDEN),
    WorkstreamNoAccess => ("workstream_no_access", StatusCode::FORBIDDEN),
    WorkstreamReadOnly => ("workstream_read_only", StatusCode::FORBIDDEN),
    /// The work reference is in neither the snapshot nor the created-works overlay.
    WorkUnknown => ("work_unknown", StatusCode::FORBIDDEN),
    /// Highway authority writing on another authority's work.
    AuthorityNotOwnWork => ("authority_not_own_work", StatusCode::FORBIDDEN),
    NotOrganisationMember => ("not_organisation_member", StatusCode::FORBIDDEN),
    /// `swaCode` names a promoter without a contract with the caller's organisation.
    SwaCodeNoContract => ("swa_code_no_contract", StatusCode::FORBIDDEN),
    /// A non-contractor used `swaCode` for an organisation other than its own.
    SwaCodeNotOwnOrganisation => ("swa_code_not_own_organisation", StatusCode::FORBIDDEN),
    /// Admin acting on another organisation.
    OtherOrganisation => ("other_organisation", StatusCode::FORBIDDEN),
    /// The token acts through a third-party integrator that the caller's organisation (or the
    /// one it acts for) has no agreement with for this API.
    IntegratorNotAgreed => ("integrator_not_agreed", StatusCode::FORBIDDEN),
    /// Contracts model: the contract is not in the snapshot.
    ContractUnknown => ("contract_unknown", StatusCode::FORBIDDEN),
    /// Contracts model: not assigned to the contract, and no user type reading it.
    ContractNotMember => ("contract_not_member", StatusCode::FORBIDDEN),
    /// Contracts model: the caller's party and role lack the permission on this contract.
    ContractPermissionMissing => ("contract_permission_missing", StatusCode::FORBIDDEN),
    /// Contracts model: the caller's user type lacks the system permission.
    SystemPermissionMissing => ("system_permission_missing", StatusCode::FORBIDDEN),
    /// Contracts model: the user type being assigned is more privileged than the caller's,
    /// or outside what the caller's type may assign.
    UserTypeNotAssignable => ("user_type_not_assignable", StatusCode::FORBIDDEN),
    /// Check mode: the route has a response policy, which only proxy mode can apply.
    FilterRequiresProxy => ("filter_requires_proxy", StatusCode::FORBIDDEN),
    /// Check mode: the rule reads the request body, which forward-auth never sends.
    BodyRequiresProxy => ("body_requires_proxy", StatusCode::FORBIDDEN),
    /// Check mode: a forward-auth request from a peer outside `check.trusted_proxies`.
    CheckPeerUntrusted => ("check_peer_untrusted", StatusCode::FORBIDDEN),

    // --- 404 ---
    RouteNotFound => ("route_not_found", StatusCode::NOT_FOUND),

    // --- 408 / 413 / 415 / 429 ---
    /// A body the rule reads was not received within `listen.body_read_timeout`.
    BodyTimeout => ("body_timeout", StatusCode::REQUEST_TIMEOUT),
    BodyTooLarge => ("body_too_large", StatusCode::PAYLOAD_TOO_LARGE),
    /// A body the rule reads is not JSON (Content-Type, charset or Content-Encoding).
    UnsupportedMediaType => ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE),
    RateLimited => ("rate_limited", StatusCode::TOO_MANY_REQUESTS),

    // --- 502 / 503 / 504 ---
    UpstreamUnavailable => ("upstream_unavailable", StatusCode::BAD_GATEWAY),
    UpstreamTimeout => ("upstream_timeout", StatusCode::GATEWAY_TIMEOUT),
    ResponseUnfilterable => ("response_unfilterable", StatusCode::BAD_GATEWAY),
    ResponseTooLarge => ("response_too_large", StatusCode::BAD_GATEWAY),
    KeysUnavailable => ("keys_unavailable", StatusCode::SERVICE_UNAVAILABLE),
    SnapshotUnavailable => ("snapshot_unavailable", StatusCode::SERVICE_UNAVAILABLE),
    SnapshotStale => ("snapshot_stale", StatusCode::SERVICE_UNAVAILABLE),
}

impl Reason {
    pub fn is_allow(self) -> bool {
        self.status().is_success()
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "duplicate code {}", r.as_str());
            assert!(
                r.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
        }
    }

    #[test]
    fn readme_documents_every_reason() {
        let readme = include_str!("../README.md");
        for r in Reason::ALL {
            let row = format!("| `{}` |", r.as_str());
            assert!(readme.contains(&row), "README lacks reason {}", r.as_str());
        }
    }

    #[test]
    fn only_allow_reasons_are_success() {
        let allows: Vec<_> = Reason::ALL.iter().filter(|r| r.is_allow()).collect();
        assert_eq!(allows.len(), 12);
        assert!(!Reason::RouteNotFound.is_allow());
    }
}
