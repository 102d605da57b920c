//! The rule's body checks and the split between the pre-body and the whole decision, over the
//! seed 000 scenario (see `fixture`).

use serde_json::{Value, json};

use super::fixture::seed_000;
use super::rule::{Access, Allow, BodyRule, Rule, ValueSource};
use super::*;
use crate::authn::identity::{Role, RoleSet};
use crate::grants::overlay::CreatedWorks;

use Role::{Contractor, HighwayAuthority as Ha, Planner};

fn identity(sub: &str, org: &str, roles: &[Role]) -> Identity {
    Identity::new(sub, org, RoleSet::of(roles), Some(1_999_000), 3_000_000).unwrap()
}

fn pointers(list: &[&str]) -> Box<[Box<str>]> {
    list.iter().map(|p| (*p).into()).collect()
}

/// POST /works as shipped: create in the body's workstream, promoter and (for authorities)
/// authority checked.
fn create_work() -> Rule {
    Rule {
        allow: Allow::Roles(RoleSet::of(&[Planner, Contractor])),
        access: Access::CreateInWorkstream(ValueSource::Body("/workstream_prefix".into())),
        organisation_member: false,
        body: BodyRule {
            organisation: pointers(&["/promoter_swa_code"]),
            authority: pointers(&["/highway_authority_swa_code"]),
            workstreams: Box::default(),
        },
    }
}

/// POST /works/{wrn}/permits as shipped.
fn create_permit() -> Rule {
    Rule {
        allow: Allow::Roles(RoleSet::of(&[Planner, Contractor])),
        access: Access::WriteWork(ValueSource::Path("wrn".into())),
        organisation_member: true,
        body: BodyRule {
            workstreams: pointers(&["/workstream_prefix"]),
            ..BodyRule::default()
        },
    }
}

/// An authority-only record (section 81, historic FPN or inspection).
fn authority_record() -> Rule {
    Rule {
        allow: Allow::Roles(RoleSet::of(&[Ha])),
        access: Access::RoleOnly,
        organisation_member: false,
        body: BodyRule {
            organisation: pointers(&["/highway_authority_swa_code"]),
            ..BodyRule::default()
        },
    }
}

fn decide_with(
    rule: &Rule,
    who: &Identity,
    resource: Option<&str>,
    swa: SwaCodeParam<'_>,
    body: &Value,
) -> Reason {
    let snapshot = seed_000();
    let created = CreatedWorks::default();
    let works = Works {
        snapshot: &snapshot,
        created: &created,
    };
    let ws = body.get("workstream_prefix").and_then(Value::as_str);
    let resource = match rule.access.source() {
        Some(ValueSource::Body(_)) => ws,
        _ => resource,
    };
    let facts = RequestFacts {
        resource,
        swa_code: swa,
        body: Some(body),
        api: "work",
    };
    decide(rule, Some(who), Some(works), &facts, 0).reason
}

#[test]
fn the_promoter_named_must_be_the_acting_organisation() {
    let a = identity("user-a", "7001", &[Planner]);
    let dig = identity("dig-1", "C901", &[Contractor]);
    let rule = create_work();
    let body = |promoter: Value| json!({"workstream_prefix": "001", "promoter_swa_code": promoter, "highway_authority_swa_code": "4020"});
    let cases: [(&Identity, SwaCodeParam<'_>, Value, Reason); 9] = [
        (
            &a,
            SwaCodeParam::Absent,
            json!("7001"),
            Reason::WorkstreamWrite,
        ),
        (
            &a,
            SwaCodeParam::Absent,
            Value::Null,
            Reason::WorkstreamWrite,
        ),
        (
            &a,
            SwaCodeParam::Absent,
            json!("7002"),
            Reason::OtherOrganisation,
        ),
        (
            &a,
            SwaCodeParam::Absent,
            json!("4020"),
            Reason::OtherOrganisation,
        ),
        (&a, SwaCodeParam::Absent, json!("7001 "), Reason::BadBody),
        (&a, SwaCodeParam::Absent, json!(7001), Reason::BadBody),
        (&a, SwaCodeParam::Absent, json!(["7001"]), Reason::BadBody),
        // A contractor acts for the promoter its swaCode names, and only for it.
        (
            &dig,
            SwaCodeParam::One("7001"),
            json!("7001"),
            Reason::WorkstreamWrite,
        ),
        (
            &dig,
            SwaCodeParam::One("7001"),
            json!("C901"),
            Reason::OtherOrganisation,
        ),
    ];
    for (who, swa, promoter, want) in cases {
        let got = decide_with(&rule, who, None, swa, &body(promoter.clone()));
        assert_eq!(got, want, "{} promoter {promoter}", who.subject);
    }
}

#[test]
fn an_authority_promoting_its_own_works_names_itself_as_the_authority() {
    // An authority's planner acts for 4020 (kind highway_authority): the authority code is
    // checked. A promoter's planner names the authority of the street, any authority.
    let rule = Rule {
        access: Access::RoleOnly,
        ..create_work()
    };
    let ha_planner = identity("ha-planner", "4020", &[Planner]);
    let a = identity("user-a", "7001", &[Planner]);
    let body = |promoter: &str, authority: Value| json!({"promoter_swa_code": promoter, "highway_authority_swa_code": authority});
    let cases = [
        (
            &ha_planner,
            body("4020", json!("4020")),
            Reason::RoleGranted,
        ),
        (
            &ha_planner,
            body("4020", json!("4021")),
            Reason::OtherOrganisation,
        ),
        (&ha_planner, body("4020", json!(4020)), Reason::BadBody),
        (&a, body("7001", json!("4021")), Reason::RoleGranted),
        (&a, body("7001", json!({"code": "4021"})), Reason::BadBody),
    ];
    for (who, body, want) in cases {
        let got = decide_with(&rule, who, None, SwaCodeParam::Absent, &body);
        assert_eq!(got, want, "{} {body}", who.subject);
    }
    let leeds = identity("ha-leeds", "4020", &[Ha]);
    let record = authority_record();
    for (authority, want) in [
        ("4020", Reason::RoleGranted),
        ("4021", Reason::OtherOrganisation),
    ] {
        let body = json!({"highway_authority_swa_code": authority, "promoter_swa_code": "7001"});
        let got = decide_with(&record, &leeds, None, SwaCodeParam::Absent, &body);
        assert_eq!(got, want, "{authority}");
    }
}

#[test]
fn a_permit_moving_the_work_needs_full_write_on_the_new_workstream() {
    let rule = create_permit();
    let a = identity("user-a", "7001", &[Planner]); // full-write 001 002, no-access 003 004
    let b = identity("user-b", "7001", &[Planner]); // read-only 001-003
    let dig = identity("dig-1", "C901", &[Contractor]); // 7001: full-write 001, read-only 002
    let one = SwaCodeParam::One("7001");
    let none = SwaCodeParam::Absent;
    let cases: [(&Identity, SwaCodeParam<'_>, Value, Reason); 11] = [
        (&a, none, json!({}), Reason::WorkstreamWrite),
        (
            &a,
            none,
            json!({"workstream_prefix": null}),
            Reason::WorkstreamWrite,
        ),
        (
            &a,
            none,
            json!({"workstream_prefix": "002"}),
            Reason::WorkstreamWrite,
        ),
        (
            &a,
            none,
            json!({"workstream_prefix": "003"}),
            Reason::WorkstreamNoAccess,
        ),
        (
            &a,
            none,
            json!({"workstream_prefix": "000"}),
            Reason::DefaultWorkstream,
        ),
        (&a, none, json!({"workstream_prefix": 2}), Reason::BadBody),
        (&a, none, json!({"workstream_prefix": "2"}), Reason::BadBody),
        (
            &b,
            none,
            json!({"workstream_prefix": "002"}),
            Reason::WorkstreamReadOnly,
        ),
        (
            &dig,
            one,
            json!({"workstream_prefix": "002"}),
            Reason::WorkstreamReadOnly,
        ),
        (
            &dig,
            one,
            json!({"workstream_prefix": "001"}),
            Reason::WorkstreamWrite,
        ),
        (
            &dig,
            none,
            json!({"workstream_prefix": "001"}),
            Reason::WorkstreamNoAccess,
        ),
    ];
    for (who, swa, body, want) in cases {
        let got = decide_with(&rule, who, Some("NW001"), swa, &body);
        assert_eq!(got, want, "{} {body}", who.subject);
    }
}

#[test]
fn the_pre_body_decision_denies_what_it_can_and_allows_only_provisionally() {
    let snapshot = seed_000();
    let created = CreatedWorks::default();
    let works = Works {
        snapshot: &snapshot,
        created: &created,
    };
    let facts = RequestFacts {
        resource: Some("NW003"),
        ..RequestFacts::default()
    };
    let a = identity("user-a", "7001", &[Planner]);
    let leeds = identity("ha-leeds", "4020", &[Ha]);
    let gas = identity("gas-1", "7002", &[Planner]);
    let early = |rule: &Rule, who: &Identity| {
        decide_before_body(rule, Some(who), Some(works), &facts).reason
    };
    // Role, suspension and (path resource) workstream access are decided without the body.
    assert_eq!(early(&create_work(), &leeds), Reason::RoleNotPermitted);
    assert_eq!(early(&create_work(), &gas), Reason::OrganisationSuspended);
    assert_eq!(early(&create_permit(), &a), Reason::WorkstreamNoAccess);
    // A body-sourced resource waits for the body.
    assert_eq!(early(&create_work(), &a), Reason::RoleGranted);
    let facts = RequestFacts {
        resource: Some("NW001"),
        ..RequestFacts::default()
    };
    let reason = decide_before_body(&create_permit(), Some(&a), Some(works), &facts).reason;
    assert!(reason.is_allow());
    // The whole decision with no body at all fails closed.
    assert_eq!(
        decide(&create_permit(), Some(&a), Some(works), &facts, 0).reason,
        Reason::BadBody
    );
}
