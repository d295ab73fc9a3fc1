//! Faults a test or a developer injects: each applies to the next API
//! requests, in order, so a scenario ("three 429s, then a slow answer") plays
//! out exactly.

use std::{collections::VecDeque, time::Duration};

use serde::Deserialize;

/// One fault, as posted to `POST /__sim/faults`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Answer with this status instead (429, 500, 503, ...).
    #[serde(default)]
    pub status: Option<u16>,
    /// `Retry-After` seconds sent with the status.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Delay the answer by this long (then answer normally, or with `status`).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// How many requests the fault applies to.
    #[serde(default = "one")]
    pub count: u32,
    /// Which requests: `api` (Management), `token`, `delivery`, or `any`.
    #[serde(default)]
    pub scope: Scope,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    Api,
    Token,
    Delivery,
    Any,
}

/// What to do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub status: Option<u16>,
    pub retry_after: Option<u64>,
    pub delay: Duration,
}

#[derive(Debug, Default)]
pub struct Faults {
    queue: VecDeque<FaultSpec>,
}

impl Faults {
    pub fn push(&mut self, spec: FaultSpec) {
        if spec.count > 0 {
            self.queue.push_back(spec);
        }
    }

    pub fn clear(&mut self) {
        self.queue.clear();
    }

    /// Takes the fault for a request in `scope`, if one is queued for it.
    pub fn take(&mut self, scope: Scope) -> Option<Fault> {
        let index = self.queue.iter().position(|f| f.scope == scope || f.scope == Scope::Any)?;
        let spec = self.queue.get_mut(index)?;
        spec.count -= 1;
        let fault = Fault {
            status: spec.status,
            retry_after: spec.retry_after,
            delay: Duration::from_millis(spec.delay_ms.unwrap_or(0)),
        };
        if spec.count == 0 {
            self.queue.remove(index);
        }
        Some(fault)
    }
}
