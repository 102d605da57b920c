//! A bounded ring of the inputs of recently decided requests. Recording never waits: a slot
//! another thread holds this instant is skipped (one sample fewer, never a stalled request).
//! Recording is on every decided request, so it allocates nothing once the ring has filled:
//! each slot keeps its sample and overwrites it in place (reference counts for what the
//! request shares, the slot's own string buffers for what it borrows). Only a parsed body is
//! copied, on the few routes whose rules read one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::authn::identity::Identity;
use crate::authz::rule::Rule;
use crate::authz::{RequestFacts, SwaCodeParam};
use crate::route::Route;

/// What the pure decision needs to decide a request again (never the token).
#[derive(Debug, Clone)]
pub struct Sample {
    pub route: Arc<str>,
    pub rule: Arc<Rule>,
    pub identity: Arc<Identity>,
    pub api: Arc<str>,
    resource: Reused,
    swa_code: SwaCode,
    /// The `swaCode` value when `swa_code` is `One`.
    swa_text: String,
    pub body: Option<Arc<serde_json::Value>>,
    pub now: u64,
}

/// An optional string whose buffer outlives its value, so the next sample reuses it.
#[derive(Debug, Clone, Default)]
struct Reused {
    present: bool,
    text: String,
}

impl Reused {
    fn set(&mut self, value: Option<&str>) {
        self.text.clear();
        self.present = value.is_some();
        if let Some(v) = value {
            self.text.push_str(v);
        }
    }

    fn get(&self) -> Option<&str> {
        self.present.then_some(self.text.as_str())
    }
}

/// `SwaCodeParam` without its value (kept in the sample's own buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SwaCode {
    Absent,
    One,
    Repeated,
}

impl Sample {
    fn new(route: &Route, identity: &Arc<Identity>, facts: &RequestFacts<'_>, now: u64) -> Sample {
        let mut sample = Sample {
            route: Arc::clone(&route.id),
            rule: Arc::clone(&route.rule),
            identity: Arc::clone(identity),
            api: Arc::clone(&route.api_name),
            resource: Reused::default(),
            swa_code: SwaCode::Absent,
            swa_text: String::new(),
            body: None,
            now,
        };
        sample.overwrite(route, identity, facts, now);
        sample
    }

    /// Replaces this sample's inputs with a new request's, reusing its buffers.
    fn overwrite(
        &mut self,
        route: &Route,
        identity: &Arc<Identity>,
        facts: &RequestFacts<'_>,
        now: u64,
    ) {
        share(&mut self.route, &route.id);
        share(&mut self.rule, &route.rule);
        share(&mut self.identity, identity);
        // `facts.api` is the route's `api_name`: the sample shares the route's copy.
        if *route.api_name == *facts.api {
            share(&mut self.api, &route.api_name);
        } else {
            self.api = facts.api.into();
        }
        self.resource.set(facts.resource);
        self.swa_text.clear();
        self.swa_code = match facts.swa_code {
            SwaCodeParam::Absent => SwaCode::Absent,
            SwaCodeParam::One(s) => {
                self.swa_text.push_str(s);
                SwaCode::One
            }
            SwaCodeParam::Repeated => SwaCode::Repeated,
        };
        self.body = facts.body.map(|b| Arc::new(b.clone()));
        self.now = now;
    }

    pub fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            api: &self.api,
            resource: self.resource.get(),
            swa_code: match self.swa_code {
                SwaCode::Absent => SwaCodeParam::Absent,
                SwaCode::One => SwaCodeParam::One(&self.swa_text),
                SwaCode::Repeated => SwaCodeParam::Repeated,
            },
            body: self.body.as_deref(),
        }
    }
}

/// Points `slot` at `value`. The same route or caller as the slot's last request (common under
/// steady traffic) costs nothing; otherwise two atomic counts, as any clone and drop would.
fn share<T: ?Sized>(slot: &mut Arc<T>, value: &Arc<T>) {
    if !Arc::ptr_eq(slot, value) {
        *slot = Arc::clone(value);
    }
}

pub struct Ring {
    slots: Box<[Mutex<Option<Sample>>]>,
    next: AtomicUsize,
}

impl Ring {
    pub fn new(size: usize) -> Ring {
        Ring {
            slots: (0..size.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Records a decided request's inputs.
    pub fn record(
        &self,
        route: &Route,
        identity: &Arc<Identity>,
        facts: &RequestFacts<'_>,
        now: u64,
    ) {
        let i = self.next_slot();
        if let Ok(mut slot) = self.slots[i].try_lock() {
            match slot.as_mut() {
                Some(sample) => sample.overwrite(route, identity, facts, now),
                None => *slot = Some(Sample::new(route, identity, facts, now)),
            }
        }
    }

    /// Where the next sample goes. A worker counts on its own thread, from its own part of the
    /// ring: one counter shared by every worker was a cache line bounced between cores on
    /// every request, and neighbouring slots written by different cores another.
    fn next_slot(&self) -> usize {
        thread_local! {
            static COUNT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        }
        let len = self.slots.len();
        match crate::listener::workers::current() {
            Some(worker) => {
                let n = COUNT.with(|c| {
                    let n = c.get();
                    c.set(n.wrapping_add(1));
                    n
                });
                let part = len / crate::listener::workers::slots().max(1);
                (worker.wrapping_mul(part).wrapping_add(n)) % len
            }
            None => self.next.fetch_add(1, Ordering::Relaxed) % len,
        }
    }

    /// The samples held now, copied out so replaying holds no lock.
    pub fn samples(&self) -> Vec<Sample> {
        self.slots
            .iter()
            .filter_map(|s| s.lock().ok().and_then(|s| s.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::identity::{Role, RoleSet};

    fn route(id: &str, api: &str) -> Route {
        Route::public_for_test(id, api, http::Method::GET)
    }

    fn caller(sub: &str) -> Arc<Identity> {
        let roles = RoleSet::of(&[Role::Planner]);
        Arc::new(Identity::new(sub, "7001", roles, None, 10).unwrap())
    }

    /// Every held sample, as text: what a replay would decide on.
    fn held(ring: &Ring) -> Vec<String> {
        ring.samples()
            .iter()
            .map(|s| {
                let f = s.facts();
                format!(
                    "{} {} {} {:?} {:?} {:?} {}",
                    s.route, s.identity.subject, f.api, f.resource, f.swa_code, f.body, s.now
                )
            })
            .collect()
    }

    fn facts<'a>(
        api: &'a str,
        resource: Option<&'a str>,
        swa_code: SwaCodeParam<'a>,
        body: Option<&'a serde_json::Value>,
    ) -> RequestFacts<'a> {
        RequestFacts {
            resource,
            swa_code,
            body,
            api,
        }
    }

    #[test]
    fn an_overwritten_slot_holds_only_the_latest_request() {
        // One slot: every record overwrites the last, so nothing of an earlier request (a
        // longer resource, a swaCode, a body) may survive into a later one.
        let ring = Ring::new(1);
        let (work, party) = (route("GetWork", "work"), route("GetParty", "party"));
        let body = serde_json::json!({"workstream": "001"});
        let (a, b) = (caller("user-a"), caller("user-b"));
        ring.record(
            &work,
            &a,
            &facts(
                "work",
                Some("NW0000001"),
                SwaCodeParam::One("C901"),
                Some(&body),
            ),
            1,
        );
        assert_eq!(
            held(&ring),
            [
                r#"GetWork user-a work Some("NW0000001") One("C901") Some(Object {"workstream": String("001")}) 1"#
            ]
        );
        ring.record(
            &party,
            &b,
            &facts("party", Some("N1"), SwaCodeParam::Repeated, None),
            2,
        );
        assert_eq!(
            held(&ring),
            ["GetParty user-b party Some(\"N1\") Repeated None 2"]
        );
        ring.record(
            &work,
            &a,
            &facts("work", None, SwaCodeParam::Absent, None),
            3,
        );
        assert_eq!(held(&ring), ["GetWork user-a work None Absent None 3"]);
        ring.record(
            &work,
            &a,
            &facts("work", Some(""), SwaCodeParam::One(""), None),
            4,
        );
        assert_eq!(
            held(&ring),
            [r#"GetWork user-a work Some("") One("") None 4"#]
        );
    }

    #[test]
    fn the_api_recorded_is_the_one_the_decision_saw() {
        let ring = Ring::new(1);
        let a = caller("user-a");
        ring.record(
            &route("GetWork", "work"),
            &a,
            &facts("other", None, SwaCodeParam::Absent, None),
            1,
        );
        assert_eq!(held(&ring), ["GetWork user-a other None Absent None 1"]);
    }

    #[test]
    fn the_ring_keeps_the_last_n_requests() {
        let ring = Ring::new(3);
        let (work, a) = (route("GetWork", "work"), caller("user-a"));
        let refs = ["NW1", "NW2", "NW3", "NW4", "NW5"];
        for (now, r) in (1..).zip(refs) {
            ring.record(
                &work,
                &a,
                &facts("work", Some(r), SwaCodeParam::Absent, None),
                now,
            );
        }
        let mut held = held(&ring);
        held.sort();
        assert_eq!(
            held,
            [
                r#"GetWork user-a work Some("NW3") Absent None 3"#,
                r#"GetWork user-a work Some("NW4") Absent None 4"#,
                r#"GetWork user-a work Some("NW5") Absent None 5"#,
            ]
        );
    }
}
