//! Session events counted through the `metrics` facade (feature
//! `metrics`); without it, nothing.
//!
//! | name | labels |
//! | --- | --- |
//! | `session_created_total` | |
//! | `session_renewed_total` | (a login's move to a new id) |
//! | `session_purged_total` | (a logout) |
//! | `session_outage_total` | `phase` (`load`, `save`), `policy` (`fail`, `empty`) |
//!
//! The store calls themselves are counted by
//! [`Instrumented`](crate::store::Instrumented).

use crate::OutagePolicy;

/// A new session was stored.
pub(super) fn created() {
    #[cfg(feature = "metrics")]
    metrics::counter!("session_created_total").increment(1);
}

/// A session moved to a new id (login).
pub(super) fn renewed() {
    #[cfg(feature = "metrics")]
    metrics::counter!("session_renewed_total").increment(1);
}

/// A session was ended (logout).
pub(super) fn purged() {
    #[cfg(feature = "metrics")]
    metrics::counter!("session_purged_total").increment(1);
}

/// The store failed and the outage policy answered.
pub(super) fn outage(phase: &'static str, policy: OutagePolicy) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "session_outage_total",
        "phase" => phase,
        "policy" => match policy {
            OutagePolicy::ServeEmpty => "empty",
            _ => "fail",
        }
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (phase, policy);
}
