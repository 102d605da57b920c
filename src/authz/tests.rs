//! Table-driven tests of `decide` over the seed 000 scenario (see `fixture`), plus sweeps over
//! every role set, access kind and work that check the model's invariants.

use super::fixture::{REVOKED_AFTER, seed_000, work};
use super::rule::{Access, Allow, Rule, ValueSource};
use super::*;
use crate::authn::identity::{Role, RoleSet};
use crate::grants::overlay::CreatedWorks;
use crate::grants::snapshot::Snapshot;

use Role::{Admin, Contractor, DataExport, HighwayAuthority as Ha, Planner};

const NOW: u64 = 2_000_000;

#[derive(Clone, Copy)]
enum Kind {
    RoleOnly,
    Read,
    ReadMember,
    Write,
    WriteMember,
    Map,
    Create,
    OwnOrg,
    Filtered,
}

const KINDS: [Kind; 9] = [
    Kind::RoleOnly,
    Kind::Read,
    Kind::ReadMember,
    Kind::Write,
    Kind::WriteMember,
    Kind::Map,
    Kind::Create,
    Kind::OwnOrg,
    Kind::Filtered,
];

fn rule(kind: Kind, allowed: &[Role]) -> Rule {
    let wrn = || ValueSource::Path("workReferenceNumber".into());
    let (access, organisation_member) = match kind {
        Kind::RoleOnly => (Access::RoleOnly, false),
        Kind::Read => (Access::ReadWork(wrn()), false),
        Kind::ReadMember => (Access::ReadWork(wrn()), true),
        Kind::Write => (Access::WriteWork(wrn()), false),
        Kind::WriteMember => (Access::WriteWork(wrn()), true),
        Kind::Map => (Access::MapView, false),
        Kind::Create => (
            Access::CreateInWorkstream(ValueSource::Body("/workstream_prefix".into())),
            false,
        ),
        Kind::OwnOrg => (
            Access::OwnOrganisation(ValueSource::Path("organisationReference".into())),
            false,
        ),
        Kind::Filtered => (Access::Filtered, false),
    };
    Rule {
        allow: Allow::Roles(RoleSet::of(allowed)),
        access,
        organisation_member,
        body: Default::default(),
    }
}

fn identity(sub: &str, org: &str, roles: &[Role], iat: Option<u64>) -> Identity {
    Identity::new(sub, org, RoleSet::of(roles), iat, NOW + 3600).unwrap()
}

/// Who, as the tests name them: subject, own organisation, roles.
fn who(name: &str) -> Identity {
    let (org, roles): (&str, &[Role]) = match name {
        "user-a" | "user-b" | "moved" => ("7001", &[Planner, Role::Api]),
        "revoked" => ("7001", &[Planner]),
        "gas-1" => ("7002", &[Planner]),
        "dig-1" | "dig-2" => ("C901", &[Contractor, Role::Ui]),
        "trench-1" => ("C902", &[Contractor]),
        "c903-1" => ("C903", &[Contractor]),
        "ha-leeds" => ("4020", &[Ha, Role::StreetWorksAdmin]),
        "ha-york" => ("4021", &[Ha]),
        "admin-nw" => ("7001", &[Admin, Role::Ui]),
        "admin-dig" => ("C901", &[Admin, Contractor]),
        "export-nw" => ("7001", &[DataExport]),
        "absent-planner" => ("7001", &[Planner]),
        other => panic!("unknown test user {other}"),
    };
    identity(name, org, roles, Some(NOW - 60))
}

struct World {
    snapshot: Snapshot,
    created: CreatedWorks,
}

impl World {
    fn new() -> World {
        let created = CreatedWorks::default();
        created.insert("NEW01", work("7001", "4020", "001"));
        created.insert("NEW03", work("7001", "4020", "003"));
        World {
            snapshot: seed_000(),
            created,
        }
    }

    fn works(&self) -> Works<'_> {
        Works {
            snapshot: &self.snapshot,
            created: &self.created,
        }
    }

    fn decide(
        &self,
        kind: Kind,
        caller: &Identity,
        resource: Option<&str>,
        swa: SwaCodeParam<'_>,
    ) -> Decision {
        let facts = RequestFacts {
            resource,
            swa_code: swa,
            body: None,
            api: "work",
        };
        decide(
            &rule(kind, &[Planner, Contractor, Ha, Admin, DataExport]),
            Some(caller),
            Some(self.works()),
            &facts,
            NOW,
        )
    }
}

use Reason as R;
use SwaCodeParam::{Absent, One, Repeated};

/// (caller, access kind, resource, swaCode, expected reason, expected acting organisation)
type Row = (
    &'static str,
    Kind,
    Option<&'static str>,
    SwaCodeParam<'static>,
    Reason,
    Option<&'static str>,
);

fn run(rows: &[Row]) {
    let world = World::new();
    let mut failures = Vec::new();
    for (i, &(name, kind, resource, swa, expected, acting)) in rows.iter().enumerate() {
        let d = world.decide(kind, &who(name), resource, swa);
        let got_acting = d.acting_organisation.map(|o| o.to_string());
        if d.reason != expected || got_acting.as_deref() != acting {
            failures.push(format!(
                "row {i} {name} {resource:?} {swa:?}: got {} acting {got_acting:?}, want {expected} acting {acting:?}",
                d.reason
            ));
        }
        assert_eq!(
            explain(&d).last().map(|l| l.contains(d.reason.as_str())),
            Some(true)
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
#[rustfmt::skip]
fn seed_000_planners_read_write_map_and_create() {
    use Kind::*;
    let nw = Some("7001");
    run(&[
        // User A: full access to 001 and 002, map view only of 003 and 004.
        ("user-a", Read, Some("NW001"), Absent, R::WorkstreamRead, nw),
        ("user-a", Read, Some("NW002"), Absent, R::WorkstreamRead, nw),
        ("user-a", Read, Some("NW003"), Absent, R::WorkstreamNoAccess, nw),
        ("user-a", Read, Some("NW004"), Absent, R::WorkstreamNoAccess, nw),
        ("user-a", Read, Some("NW000"), Absent, R::WorkstreamNoAccess, nw),
        ("user-a", Write, Some("NW001"), Absent, R::WorkstreamWrite, nw),
        ("user-a", Write, Some("NW002"), Absent, R::WorkstreamWrite, nw),
        ("user-a", Write, Some("NW003"), Absent, R::WorkstreamNoAccess, nw),
        ("user-a", Write, Some("NW004"), Absent, R::WorkstreamNoAccess, nw),
        ("user-a", Map, None, Absent, R::MapView, nw),
        ("user-a", Create, Some("001"), Absent, R::WorkstreamWrite, nw),
        ("user-a", Create, Some("002"), Absent, R::WorkstreamWrite, nw),
        ("user-a", Create, Some("003"), Absent, R::WorkstreamNoAccess, nw),
        ("user-a", Create, Some("004"), Absent, R::WorkstreamNoAccess, nw),
        // User B: view only 001–003, map view 004.
        ("user-b", Read, Some("NW001"), Absent, R::WorkstreamRead, nw),
        ("user-b", Read, Some("NW002"), Absent, R::WorkstreamRead, nw),
        ("user-b", Read, Some("NW003"), Absent, R::WorkstreamRead, nw),
        ("user-b", Read, Some("NW004"), Absent, R::WorkstreamNoAccess, nw),
        ("user-b", Write, Some("NW001"), Absent, R::WorkstreamReadOnly, nw),
        ("user-b", Write, Some("NW003"), Absent, R::WorkstreamReadOnly, nw),
        ("user-b", Write, Some("NW004"), Absent, R::WorkstreamNoAccess, nw),
        ("user-b", Map, None, Absent, R::MapView, nw),
        ("user-b", Create, Some("001"), Absent, R::WorkstreamReadOnly, nw),
        ("user-b", Create, Some("004"), Absent, R::WorkstreamNoAccess, nw),
        // The default workstream and malformed or missing values.
        ("user-a", Create, Some("000"), Absent, R::DefaultWorkstream, nw),
        ("user-a", Create, Some("01"), Absent, R::BadBody, nw),
        ("user-a", Create, Some("0/1"), Absent, R::BadBody, nw),
        ("user-a", Create, None, Absent, R::BadBody, nw),
        ("user-a", Read, None, Absent, R::BadPath, nw),
        // Another promoter's work: grants are per organisation.
        ("user-a", Read, Some("SG001"), Absent, R::WorkstreamNoAccess, nw),
        ("user-a", Write, Some("YW001"), Absent, R::WorkstreamNoAccess, nw),
        // Unknown works (guessed URLs) and works in the created-works overlay.
        ("user-a", Read, Some("NW999"), Absent, R::WorkUnknown, nw),
        ("user-a", Write, Some(""), Absent, R::WorkUnknown, nw),
        ("user-a", Read, Some("NEW01"), Absent, R::WorkstreamRead, nw),
        ("user-a", Write, Some("NEW01"), Absent, R::WorkstreamWrite, nw),
        ("user-a", Read, Some("NEW03"), Absent, R::WorkstreamNoAccess, nw),
        ("user-b", Write, Some("NEW01"), Absent, R::WorkstreamReadOnly, nw),
        // A user absent from the snapshot has no grants.
        ("absent-planner", Read, Some("NW001"), Absent, R::WorkstreamNoAccess, nw),
        ("absent-planner", Map, None, Absent, R::MapView, nw),
        // Membership: a planner's acting organisation is the promoter whenever it may act.
        ("user-a", WriteMember, Some("NW001"), Absent, R::WorkstreamWrite, nw),
        ("user-b", ReadMember, Some("NW003"), Absent, R::WorkstreamRead, nw),
        // swaCode for a non-contractor: own organisation only.
        ("user-a", Read, Some("NW001"), One("7001"), R::WorkstreamRead, nw),
        ("user-a", Read, Some("NW001"), One("7003"), R::SwaCodeNotOwnOrganisation, nw),
        ("user-a", Map, None, One("C901"), R::SwaCodeNotOwnOrganisation, nw),
        ("user-a", Read, Some("NW001"), Repeated, R::SwaCodeInvalid, nw),
        ("user-a", Read, Some("NW001"), One("70011"), R::SwaCodeInvalid, nw),
        ("user-a", RoleOnly, None, One(""), R::SwaCodeInvalid, nw),
    ]);
}

#[test]
#[rustfmt::skip]
fn contractors_act_only_for_promoters_with_a_contract() {
    use Kind::*;
    let (nw, yw, sg, dig) = (Some("7001"), Some("7003"), Some("7002"), Some("C901"));
    run(&[
        // With a contract and grants: held to exactly the grants 7001 gave dig-1.
        ("dig-1", Read, Some("NW001"), One("7001"), R::WorkstreamRead, nw),
        ("dig-1", Write, Some("NW001"), One("7001"), R::WorkstreamWrite, nw),
        ("dig-1", Read, Some("NW002"), One("7001"), R::WorkstreamRead, nw),
        ("dig-1", Write, Some("NW002"), One("7001"), R::WorkstreamReadOnly, nw),
        ("dig-1", Read, Some("NW003"), One("7001"), R::WorkstreamNoAccess, nw),
        ("dig-1", Create, Some("001"), One("7001"), R::WorkstreamWrite, nw),
        ("dig-1", Create, Some("002"), One("7001"), R::WorkstreamReadOnly, nw),
        ("dig-1", Create, Some("000"), One("7001"), R::DefaultWorkstream, nw),
        ("dig-1", Map, None, One("7001"), R::MapView, nw),
        ("dig-1", WriteMember, Some("NEW01"), One("7001"), R::WorkstreamWrite, nw),
        // Grants for one promoter never carry over to another's works.
        ("dig-1", Read, Some("YW001"), One("7001"), R::WorkstreamNoAccess, nw),
        ("dig-1", Read, Some("YW001"), One("7003"), R::WorkstreamRead, yw),
        ("dig-1", Write, Some("YW001"), One("7003"), R::WorkstreamReadOnly, yw),
        ("dig-1", Read, Some("NW001"), One("7003"), R::WorkstreamNoAccess, yw),
        // Without swaCode a contractor acts for nobody.
        ("dig-1", Read, Some("NW001"), Absent, R::WorkstreamNoAccess, dig),
        ("dig-1", Write, Some("NW001"), Absent, R::WorkstreamNoAccess, dig),
        ("dig-1", Create, Some("001"), Absent, R::WorkstreamNoAccess, dig),
        ("dig-1", Map, None, Absent, R::MapView, dig),
        ("dig-1", RoleOnly, None, Absent, R::RoleGranted, dig),
        // A contract but no grants: contractor users start with no access.
        ("dig-2", Read, Some("NW001"), One("7001"), R::WorkstreamNoAccess, nw),
        ("dig-2", Map, None, One("7001"), R::MapView, nw),
        // Grants without a contract, a contract with someone else, an authority, itself.
        ("trench-1", Read, Some("NW001"), One("7001"), R::SwaCodeNoContract, Some("C902")),
        ("dig-1", Read, Some("NW001"), One("4020"), R::SwaCodeNoContract, dig),
        ("dig-1", RoleOnly, None, One("C901"), R::SwaCodeNoContract, dig),
        ("dig-1", Map, None, One("9999"), R::SwaCodeNoContract, dig),
        // Suspended organisations: the promoter acted for, or the contractor's own.
        ("dig-1", Read, Some("SG001"), One("7002"), R::OrganisationSuspended, sg),
        ("dig-1", RoleOnly, None, One("7002"), R::OrganisationSuspended, sg),
        ("c903-1", Read, Some("NW001"), One("7001"), R::OrganisationSuspended, Some("C903")),
        ("c903-1", Map, None, Absent, R::OrganisationSuspended, Some("C903")),
        // Malformed and repeated swaCode.
        ("dig-1", Read, Some("NW001"), Repeated, R::SwaCodeInvalid, dig),
        ("dig-1", Read, Some("NW001"), One("70"), R::SwaCodeInvalid, dig),
        ("dig-1", Read, Some("NW001"), One("70 1"), R::SwaCodeInvalid, dig),
    ]);
}

#[test]
#[rustfmt::skip]
fn authorities_read_everything_and_write_their_own() {
    use Kind::*;
    let (leeds, york) = (Some("4020"), Some("4021"));
    run(&[
        ("ha-leeds", Read, Some("NW001"), Absent, R::AuthorityRead, leeds),
        ("ha-leeds", Read, Some("NW003"), Absent, R::AuthorityRead, leeds),
        ("ha-leeds", Read, Some("YW001"), Absent, R::AuthorityRead, leeds),
        ("ha-leeds", Read, Some("SG001"), Absent, R::AuthorityRead, leeds),
        ("ha-leeds", Read, Some("NEW03"), Absent, R::AuthorityRead, leeds),
        ("ha-leeds", Read, Some("NW999"), Absent, R::WorkUnknown, leeds),
        ("ha-leeds", Write, Some("NW001"), Absent, R::AuthorityOwnWork, leeds),
        ("ha-leeds", Write, Some("NW004"), Absent, R::AuthorityOwnWork, leeds),
        ("ha-leeds", Write, Some("NEW01"), Absent, R::AuthorityOwnWork, leeds),
        ("ha-leeds", Write, Some("NW003"), Absent, R::AuthorityNotOwnWork, leeds),
        ("ha-york", Write, Some("NW003"), Absent, R::AuthorityOwnWork, york),
        ("ha-york", Write, Some("NW001"), Absent, R::AuthorityNotOwnWork, york),
        ("ha-york", WriteMember, Some("YW001"), Absent, R::AuthorityOwnWork, york),
        // Organisation membership narrows an authority's reads to its own works.
        ("ha-york", ReadMember, Some("NW001"), Absent, R::NotOrganisationMember, york),
        ("ha-york", ReadMember, Some("YW001"), Absent, R::AuthorityRead, york),
        ("ha-leeds", Map, None, Absent, R::MapView, leeds),
        // An authority's swaCode may only name itself; it never acts for a promoter.
        ("ha-leeds", Read, Some("NW001"), One("4020"), R::AuthorityRead, leeds),
        ("ha-leeds", Write, Some("NW001"), One("7001"), R::SwaCodeNotOwnOrganisation, leeds),
    ]);
}

#[test]
#[rustfmt::skip]
fn admins_act_on_their_own_organisation_only() {
    use Kind::*;
    let nw = Some("7001");
    run(&[
        ("admin-nw", OwnOrg, Some("7001"), Absent, R::OwnOrganisation, nw),
        ("admin-nw", OwnOrg, Some("7003"), Absent, R::OtherOrganisation, nw),
        ("admin-nw", OwnOrg, Some("700"), Absent, R::OtherOrganisation, nw),
        ("admin-nw", OwnOrg, Some("7001"), One("7001"), R::OwnOrganisation, nw),
        ("admin-nw", OwnOrg, None, Absent, R::BadPath, nw),
        ("admin-nw", OwnOrg, Some("7003"), One("7003"), R::SwaCodeNotOwnOrganisation, nw),
        // A contractor admin acting for a promoter still administers only its own organisation.
        ("admin-dig", OwnOrg, Some("7001"), One("7001"), R::OtherOrganisation, Some("7001")),
        ("admin-dig", OwnOrg, Some("C901"), One("7001"), R::OwnOrganisation, Some("7001")),
        ("user-a", OwnOrg, Some("7001"), Absent, R::OwnOrganisation, nw),
        // Admins hold no workstream grants.
        ("admin-nw", Read, Some("NW001"), Absent, R::WorkstreamNoAccess, nw),
        ("export-nw", Read, Some("NW001"), Absent, R::WorkstreamNoAccess, nw),
    ]);
}

#[test]
fn suspended_organisations_and_revoked_tokens_are_401() {
    use Kind::*;
    let world = World::new();
    for kind in KINDS {
        let d = world.decide(kind, &who("gas-1"), Some("SG001"), Absent);
        assert_eq!(d.reason, R::OrganisationSuspended);
        assert_eq!(d.reason.status(), http::StatusCode::UNAUTHORIZED);
    }
    let at = |iat| identity("revoked", "7001", &[Planner], iat);
    let decide = |iat| world.decide(Write, &at(iat), Some("NW001"), Absent).reason;
    assert_eq!(decide(Some(REVOKED_AFTER - 1)), R::TokenRevoked);
    assert_eq!(decide(None), R::TokenRevoked);
    assert_eq!(decide(Some(REVOKED_AFTER)), R::WorkstreamWrite);
    assert_eq!(decide(Some(REVOKED_AFTER + 10)), R::WorkstreamWrite);
    // Revocation is checked before roles: a revoked token is "who are you?", not "not allowed".
    let ha_only = rule(RoleOnly, &[Ha]);
    let d = decide_with(&world, &ha_only, &at(Some(1)), Absent);
    assert_eq!(d.reason, R::TokenRevoked);
    // The snapshot moved the user to another organisation than its token names.
    assert_eq!(
        world
            .decide(Read, &who("moved"), Some("NW001"), Absent)
            .reason,
        R::TokenRevoked
    );
}

fn decide_with(world: &World, rule: &Rule, caller: &Identity, swa: SwaCodeParam) -> Decision {
    let facts = RequestFacts {
        resource: None,
        swa_code: swa,
        body: None,
        api: "work",
    };
    decide(rule, Some(caller), Some(world.works()), &facts, NOW)
}

#[test]
fn roles_public_routes_and_missing_tokens() {
    let world = World::new();
    let facts = RequestFacts::default();
    let public = Rule {
        allow: Allow::Public,
        access: Access::RoleOnly,
        organisation_member: false,
        body: Default::default(),
    };
    assert_eq!(decide(&public, None, None, &facts, NOW).reason, R::Public);
    let gone = identity("gas-1", "7002", &[Planner], Some(1));
    assert_eq!(
        decide(&public, Some(&gone), Some(world.works()), &facts, NOW).reason,
        R::Public
    );
    for kind in KINDS {
        let r = rule(kind, &[Planner]);
        assert_eq!(
            decide(&r, None, Some(world.works()), &facts, NOW).reason,
            R::TokenMissing
        );
        let d = decide_with(&world, &r, &who("ha-leeds"), Absent);
        assert_eq!(d.reason, R::RoleNotPermitted);
    }
    let bad_org = identity("user-a", "10", &[Planner], Some(NOW));
    let d = decide_with(&world, &rule(Kind::Map, &[Planner]), &bad_org, Absent);
    assert_eq!(d.reason, R::TokenClaims);
}

#[test]
fn without_a_snapshot_only_role_rules_are_decided() {
    let facts = |swa| RequestFacts {
        resource: Some("NW001"),
        swa_code: swa,
        body: None,
        api: "work",
    };
    let all = [Planner, Contractor, Ha];
    for kind in KINDS {
        let r = rule(kind, &all);
        let d = decide(&r, Some(&who("user-a")), None, &facts(Absent), NOW);
        let want = match kind {
            Kind::RoleOnly => R::RoleGranted,
            _ => R::SnapshotUnavailable,
        };
        assert_eq!(d.reason, want);
    }
    let role_only = rule(Kind::RoleOnly, &all);
    let dig = who("dig-1");
    let d = decide(&role_only, Some(&dig), None, &facts(One("7001")), NOW);
    assert_eq!(d.reason, R::SnapshotUnavailable);
    let d = decide(&role_only, Some(&dig), None, &facts(Absent), NOW);
    assert_eq!(d.reason, R::RoleGranted);
    let d = decide(
        &role_only,
        Some(&who("user-a")),
        None,
        &facts(One("7003")),
        NOW,
    );
    assert_eq!(d.reason, R::SwaCodeNotOwnOrganisation);
}

#[test]
fn filtered_routes_carry_visibility() {
    use crate::authz::Visibility;
    let world = World::new();
    let rows = |name: &str, swa| {
        let d = world.decide(Kind::Filtered, &who(name), None, swa);
        assert_eq!(d.reason, R::FilteredRows, "{name}");
        d.visibility.unwrap()
    };
    let ws = |org: &str, list: &[&str]| Visibility::Workstreams {
        organisation: SwaCode::parse(org).unwrap(),
        readable: list.iter().map(|w| Workstream::parse(w).unwrap()).collect(),
    };
    assert_eq!(rows("user-a", Absent), ws("7001", &["001", "002"]));
    assert_eq!(rows("user-b", Absent), ws("7001", &["001", "002", "003"]));
    assert_eq!(rows("dig-1", One("7001")), ws("7001", &["001", "002"]));
    assert_eq!(rows("dig-1", One("7003")), ws("7003", &["001"]));
    assert_eq!(rows("dig-1", Absent), ws("C901", &[]));
    assert_eq!(rows("export-nw", Absent), ws("7001", &[]));
    assert_eq!(rows("ha-leeds", Absent), Visibility::All);
    // The public helper agrees with what the decision computed.
    let d = world.decide(Kind::Filtered, &who("dig-1"), None, One("7001"));
    assert_eq!(
        visibility(
            &world.snapshot,
            "dig-1",
            d.capacity.unwrap(),
            d.acting_organisation.unwrap()
        ),
        d.visibility.unwrap()
    );
    // Denied filtered requests carry no visibility.
    let d = world.decide(Kind::Filtered, &who("trench-1"), None, One("7001"));
    assert_eq!((d.reason, d.visibility), (R::SwaCodeNoContract, None));
}

/// Every valid role set × access kind × work × swaCode × subject: the model's invariants hold.
#[test]
fn invariants_hold_for_every_role_set_and_access_kind() {
    let world = World::new();
    let role_sets: Vec<RoleSet> = (0u16..256)
        .map(|mask| {
            RoleSet::of(
                &Role::ALL
                    .into_iter()
                    .filter(|r| mask & 1 << *r as u8 != 0)
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|s| !s.is_empty() && s.validate().is_ok())
        .collect();
    assert!(role_sets.len() > 30);
    let subjects = [
        ("user-a", "7001"),
        ("user-b", "7001"),
        ("dig-1", "C901"),
        ("ha-leeds", "4020"),
        ("ha-york", "4021"),
        ("nobody", "7001"),
    ];
    let resources = [
        "NW001", "NW002", "NW003", "NW004", "SG001", "YW001", "NEW01", "001", "7001",
    ];
    let swas = [Absent, One("7001"), One("7003")];
    let allowed_by = [Planner, Contractor, Ha];
    let mut checked = 0;
    for roles in &role_sets {
        for (sub, org) in subjects {
            let caller = Identity::new(sub, org, *roles, Some(NOW), NOW + 3600).unwrap();
            for kind in KINDS {
                let r = rule(kind, &allowed_by);
                for resource in resources {
                    for swa in swas {
                        let facts = RequestFacts {
                            resource: Some(resource),
                            swa_code: swa,
                            body: None,
                            api: "work",
                        };
                        let d = decide(&r, Some(&caller), Some(world.works()), &facts, NOW);
                        check_invariants(roles, &caller, swa, &d);
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 10_000);
}

fn check_invariants(roles: &RoleSet, caller: &Identity, swa: SwaCodeParam, d: &Decision) {
    let ctx = || format!("{roles:?} {} {swa:?} → {d:?}", caller.subject);
    if d.allowed() {
        assert!(
            roles.intersects(RoleSet::of(&[Planner, Contractor, Ha])),
            "{}",
            ctx()
        );
    }
    let own = SwaCode::parse(&caller.organisation);
    match d.reason {
        R::WorkstreamRead | R::WorkstreamWrite => {
            let work = d.work;
            let (ws, level) = d.workstream_access.expect("grant consulted");
            if let Some(work) = work {
                assert_eq!(Some(work.promoter), d.acting_organisation, "{}", ctx());
                assert_eq!(ws, work.workstream);
            }
            let need = if d.reason == R::WorkstreamRead {
                AccessLevel::ReadOnly
            } else {
                AccessLevel::FullWrite
            };
            assert!(level >= need, "{}", ctx());
            // Authorities are never held to grants on a work record (creating is grants-only).
            assert!(work.is_none() || !roles.contains(Ha), "{}", ctx());
            if roles.contains(Contractor) {
                assert!(
                    matches!(swa, One(_)),
                    "contractor without swaCode acted: {}",
                    ctx()
                );
                assert_eq!(d.capacity, Some(Capacity::Grants { via_contract: true }));
            }
        }
        R::AuthorityRead | R::AuthorityOwnWork => {
            assert!(
                roles.contains(Ha) && !roles.contains(Contractor),
                "{}",
                ctx()
            );
            assert_eq!(d.acting_organisation, own);
            if d.reason == R::AuthorityOwnWork {
                assert_eq!(d.work.map(|w| w.highway_authority), own, "{}", ctx());
            }
        }
        _ => {}
    }
    if !roles.contains(Contractor) && d.allowed() && d.reason != R::Public {
        assert_eq!(
            d.acting_organisation,
            own,
            "only contractors act for others: {}",
            ctx()
        );
    }
}

#[test]
fn explain_reports_the_chain_the_decision_took() {
    let world = World::new();
    let d = world.decide(Kind::Write, &who("dig-1"), Some("NW002"), One("7001"));
    assert_eq!(
        explain(&d),
        [
            "acting organisation: 7001 (named by swaCode, under contract)",
            "capacity: contractor acting as planner, held to the promoter's grants",
            "work: promoter 7001, highway authority 4020, workstream 002",
            "workstream 002: read-only",
            "denied: workstream_read_only (403)",
        ]
    );
    let d = world.decide(Kind::Filtered, &who("user-b"), None, Absent);
    assert_eq!(
        explain(&d)[2..],
        [
            "rows: workstreams [001, 002, 003] of 7001",
            "allowed: filtered_rows (200)"
        ]
    );
    let d = world.decide(Kind::Read, &who("gas-1"), Some("SG001"), Absent);
    assert_eq!(
        explain(&d),
        [
            "acting organisation: 7002 (own organisation; stopped before swaCode was checked)",
            "denied: organisation_suspended (401)",
        ]
    );
}
