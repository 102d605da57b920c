//! A bounded ring of the inputs of recently decided requests. Recording never waits: a slot
//! another thread holds this instant is skipped (one sample fewer, never a stalled request).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::authn::identity::Identity;
use crate::authz::rule::Rule;
use crate::authz::{RequestFacts, SwaCodeParam};

/// What the pure decision needs to decide a request again (never the token).
#[derive(Debug)]
pub struct Sample {
    pub route: Arc<str>,
    pub rule: Arc<Rule>,
    pub identity: Arc<Identity>,
    pub api: Arc<str>,
    pub resource: Option<Box<str>>,
    pub swa_code: SwaCode,
    pub body: Option<Arc<serde_json::Value>>,
    pub now: u64,
}

/// `SwaCodeParam`, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwaCode {
    Absent,
    One(Box<str>),
    Repeated,
}

impl Sample {
    pub fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            api: &self.api,
            resource: self.resource.as_deref(),
            swa_code: match &self.swa_code {
                SwaCode::Absent => SwaCodeParam::Absent,
                SwaCode::One(s) => SwaCodeParam::One(s),
                SwaCode::Repeated => SwaCodeParam::Repeated,
            },
            body: self.body.as_deref(),
        }
    }
}

impl From<SwaCodeParam<'_>> for SwaCode {
    fn from(p: SwaCodeParam<'_>) -> SwaCode {
        match p {
            SwaCodeParam::Absent => SwaCode::Absent,
            SwaCodeParam::One(s) => SwaCode::One(s.into()),
            SwaCodeParam::Repeated => SwaCode::Repeated,
        }
    }
}

pub struct Ring {
    slots: Box<[Mutex<Option<Arc<Sample>>>]>,
    next: AtomicUsize,
}

impl Ring {
    pub fn new(size: usize) -> Ring {
        Ring {
            slots: (0..size.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub fn record(&self, sample: Sample) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        if let Ok(mut slot) = self.slots[i].try_lock() {
            *slot = Some(Arc::new(sample));
        }
    }

    /// The samples held now, copied out so replaying holds no lock.
    pub fn samples(&self) -> Vec<Arc<Sample>> {
        self.slots
            .iter()
            .filter_map(|s| s.lock().ok().and_then(|s| s.clone()))
            .collect()
    }
}
