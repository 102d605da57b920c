//! `decide()` on the request path's common cases, with the identity already verified and cached
//! (what the pipeline holds after a token-cache hit). Goal: ≤ 1 µs per decision.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use streetgate::authn::identity::{Identity, Role, RoleSet};
use streetgate::authz::fixture::seed_000_with_bulk;
use streetgate::authz::rule::{Access, Allow, Rule, ValueSource};
use streetgate::authz::{RequestFacts, SwaCodeParam, decide};
use streetgate::grants::overlay::{CreatedWorks, Works};

fn identity(sub: &str, org: &str, roles: &[Role]) -> Identity {
    Identity::new(
        sub,
        org,
        RoleSet::of(roles),
        Some(1_900_000_000),
        1_900_003_600,
    )
    .unwrap()
}

fn rule(access: Access) -> Rule {
    Rule {
        allow: Allow::Roles(RoleSet::of(&[
            Role::Planner,
            Role::Contractor,
            Role::HighwayAuthority,
        ])),
        access,
        organisation_member: false,
        body: Default::default(),
    }
}

fn bench(c: &mut Criterion) {
    let snapshot = seed_000_with_bulk(200_000, 20_000);
    let created = CreatedWorks::default();
    let works = Works {
        snapshot: &snapshot,
        created: &created,
    };
    let wrn = || ValueSource::Path("workReferenceNumber".into());
    let read = rule(Access::ReadWork(wrn()));
    let write = Rule {
        organisation_member: true,
        ..rule(Access::WriteWork(wrn()))
    };
    let filtered = rule(Access::Filtered);
    let user_a = identity("user-a", "7001", &[Role::Planner, Role::Api]);
    let dig = identity("dig-1", "C901", &[Role::Contractor]);
    let leeds = identity("ha-leeds", "4020", &[Role::HighwayAuthority]);
    let now = 1_900_000_100;

    let mut cases = [
        (
            "workstream_read",
            &read,
            &user_a,
            "NW001",
            SwaCodeParam::Absent,
        ),
        (
            "contractor_write_via_swa_code",
            &write,
            &dig,
            "NW001",
            SwaCodeParam::One("7001"),
        ),
        (
            "authority_read",
            &read,
            &leeds,
            "NW003",
            SwaCodeParam::Absent,
        ),
        (
            "unknown_work",
            &read,
            &user_a,
            "NW999",
            SwaCodeParam::Absent,
        ),
        (
            "filtered_visibility",
            &filtered,
            &user_a,
            "",
            SwaCodeParam::Absent,
        ),
    ];
    let mut group = c.benchmark_group("decide");
    for (name, rule, who, resource, swa) in &mut cases {
        let facts = RequestFacts {
            resource: Some(resource),
            swa_code: *swa,
            body: None,
            api: "work",
        };
        assert!(
            decide(rule, Some(who), Some(works), &facts, now).allowed()
                == (*name != "unknown_work")
        );
        group.bench_function(*name, |b| {
            b.iter(|| {
                decide(
                    black_box(rule),
                    black_box(Some(*who)),
                    Some(works),
                    black_box(&facts),
                    now,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
