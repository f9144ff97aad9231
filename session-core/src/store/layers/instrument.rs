//! What every store call did, for operators: a `tracing` span around each
//! call, and (feature `metrics`) counts and latencies through the
//! [`metrics`](https://docs.rs/metrics) facade.
//!
//! # Spans
//!
//! Each call runs in a `session_store` span at level `DEBUG`, with the
//! fields `store` (such as `redis`) and `op` (`load`, `create`, `apply`,
//! `touch`, `delete`, `take`, `scan`, `purge_expired`). Neither the session
//! id, nor its store key, nor any value is ever recorded.
//!
//! # Metrics
//!
//! With the `metrics` feature, and whatever recorder the app installs
//! (Prometheus, StatsD, ...):
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | `session_store_calls_total` | counter | `store`, `op`, `outcome` |
//! | `session_store_call_duration_seconds` | histogram | `store`, `op` |
//!
//! `outcome` is what the call found or did: `found` or `missing` (`load`,
//! `take`), `created` or `taken` (`create`), `done`, `deleted`, `gone` or
//! `too_large` (`apply`, `touch`), `ok` (`delete`, `scan`,
//! `purge_expired`), and for every call `timeout` or `error`. Without a
//! recorder, recording costs a relaxed atomic load.

use std::future::Future;
use std::time::Duration;

use tracing::Instrument as _;

use crate::StoreKey;
use crate::store::{Applied, ChangeSet, Record, ScanPage, SessionStore, StoreError};

/// A store whose every call is observed (see the [module docs](self)).
/// The middleware puts one around the store it is given, outside the
/// timeout, so a call cut at `SESSION_STORE_TIMEOUT` counts as `timeout`.
#[derive(Clone, Debug)]
pub struct Instrumented<S> {
    inner: S,
    store: &'static str,
}

impl<S> Instrumented<S> {
    /// Observes the calls to `store`, labelled `name` (such as `redis`).
    pub fn new(store: S, name: &'static str) -> Self {
        Self {
            inner: store,
            store: name,
        }
    }

    /// The store inside.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    async fn observe<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
        outcome: impl FnOnce(&T) -> &'static str,
    ) -> Result<T, StoreError> {
        let span = tracing::debug_span!("session_store", store = self.store, op);
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        let result = call.instrument(span).await;
        #[cfg(feature = "metrics")]
        {
            let outcome = match &result {
                Ok(value) => outcome(value),
                Err(StoreError::Timeout(_)) => "timeout",
                Err(_) => "error",
            };
            let store = self.store;
            metrics::counter!(
                "session_store_calls_total",
                "store" => store, "op" => op, "outcome" => outcome
            )
            .increment(1);
            metrics::histogram!(
                "session_store_call_duration_seconds",
                "store" => store, "op" => op
            )
            .record(started.elapsed().as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = outcome;
        result
    }
}

fn found(record: &Option<Record>) -> &'static str {
    if record.is_some() { "found" } else { "missing" }
}

fn applied(applied: &Applied) -> &'static str {
    match applied {
        Applied::Done => "done",
        Applied::Deleted => "deleted",
        Applied::Gone => "gone",
        Applied::TooLarge { .. } => "too_large",
    }
}

fn ok<T>(_: &T) -> &'static str {
    "ok"
}

impl<S: SessionStore> SessionStore for Instrumented<S> {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.observe("load", self.inner.load(key), found).await
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let call = self.inner.create(key, record, ttl);
        self.observe(
            "create",
            call,
            |created| {
                if *created { "created" } else { "taken" }
            },
        )
        .await
    }

    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        let call = self.inner.apply(key, changes, ttl);
        self.observe("apply", call, applied).await
    }

    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        self.observe("touch", self.inner.touch(key, ttl), applied)
            .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.observe("delete", self.inner.delete(key), ok).await
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.observe("take", self.inner.take(key), found).await
    }

    async fn scan(&self, prefix: &str, cursor: Option<&str>) -> Result<ScanPage, StoreError> {
        self.observe("scan", self.inner.scan(prefix, cursor), ok)
            .await
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.observe("purge_expired", self.inner.purge_expired(), ok)
            .await
    }
}
