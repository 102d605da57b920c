//! Check mode's entry to the pipeline: decide the request a fronting proxy reports, forward
//! nothing, and answer with the identity headers to add upstream and the client headers to
//! remove, or with the same rejection proxy mode gives.

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::Response;
use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use http_body_util::Full;

use super::Gateway;
use super::decide::{BodySource, Decided, Mode};
use super::ids::InFlight;
use crate::forward::headers;
use crate::reason::Reason;
use crate::telemetry::decision_log::{self, DecisionId, DecisionRecord};

/// The original request as the fronting proxy reported it.
pub struct CheckRequest {
    pub parts: Parts,
    /// The body the proxy sent along (empty when it sends none).
    pub body: Bytes,
    /// Why `body` is not the whole body (cut short, stalled, never sent), if so: a rule that
    /// reads the body is answered with this reason.
    pub cut: Option<Reason>,
}

/// What the fronting proxy should do.
pub enum CheckAnswer {
    Allow(Allowed),
    /// The rejection proxy mode would give (status, JSON body, headers).
    Deny(Response<Full<Bytes>>),
}

pub struct Allowed {
    pub decision_id: String,
    /// Identity headers for the upstream request (`x-streetgate-*`), set, replacing any value.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Client headers to remove from the upstream request: every spelling of `x-streetgate-*`
    /// and of the re-routing family proxy mode strips, minus the names in `set`.
    pub remove: Vec<HeaderName>,
}

impl Gateway {
    /// Decides one reported request; never fails: errors become the rejection response.
    pub async fn check(&self, request: CheckRequest) -> CheckAnswer {
        let started = Instant::now();
        let at = SystemTime::now();
        let _in_flight = InFlight::enter(&self.metrics.requests_in_flight);
        let runtime = self.runtime.load_full();
        let mut log = DecisionRecord::new(self.ids.next(at), &request.parts.method, started, at);
        log.trace = self.begin_span(&request.parts.headers, "check");
        let source = BodySource::Given {
            bytes: request.body,
            cut: request.cut,
        };
        // No per-IP limit: the TCP peer is the fronting proxy, which owns per-client limits.
        let decided = self
            .decide_request(
                &runtime,
                None,
                &request.parts,
                source,
                Mode::Check,
                &mut log,
            )
            .await;
        let answer = match decided {
            Ok(decided) => {
                log.status = 200;
                decision_log::emit(&log, runtime.config.decision_log.allow_sample_rate);
                CheckAnswer::Allow(allowed(&decided, &request.parts, &log.decision_id))
            }
            Err(err) => CheckAnswer::Deny(self.reject(&runtime, &mut log, &err)),
        };
        self.end_span(&mut log);
        answer
    }
}

impl Gateway {
    /// Refuses a check request that reports no decidable request (untrusted peer, missing or
    /// conflicting original URI or method): counted as unmatched and logged like any other.
    pub fn check_refused(&self, method: &http::Method, reason: Reason) -> Response<Full<Bytes>> {
        let runtime = self.runtime.load();
        let at = SystemTime::now();
        let mut log = DecisionRecord::new(self.ids.next(at), method, Instant::now(), at);
        self.reject(&runtime, &mut log, &reason.into())
    }
}

fn allowed(decided: &Decided<'_, '_>, parts: &Parts, decision_id: &DecisionId) -> Allowed {
    let mut set = vec![(headers::DECISION_ID, decision_id.header_value())];
    if let Some(identity) = &decided.identity {
        let values = identity.headers();
        set.push((headers::USER, values.user.clone()));
        set.push((headers::ORGANISATION, values.organisation.clone()));
        set.push((headers::ROLES, values.roles.clone()));
    }
    if let Some(acting) = decided.decision.acting_organisation {
        set.push((headers::ACTING_ORGANISATION, acting.header_value()));
    }
    let mut remove: Vec<HeaderName> = Vec::new();
    for name in parts.headers.keys() {
        if headers::is_spoofable(name)
            && !set.iter().any(|(n, _)| n == name)
            && !remove.contains(name)
        {
            remove.push(name.clone());
        }
    }
    Allowed {
        decision_id: decision_id.to_string(),
        set,
        remove,
    }
}
