//! Store doubles: the memory store wrapped to record calls, fail or hang on
//! demand, or hold one call until released. They are for what a real store
//! cannot be made to show (a store that hangs on demand, the exact calls
//! made, a logout landing between two steps of a login).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use session_actix::store::memory::MemoryStore;
use session_core::StoreKey;
use session_core::store::{Applied, ChangeSet, Record, SessionStore, StoreError};
use tokio::sync::Notify;

/// One call a store received.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Call {
    Load(String),
    Create(String, Record),
    Apply(String, ChangeSet),
    Touch(String),
    Delete(String),
    Take(String),
}

impl Call {
    /// The operation's name: `load`, `create`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Call::Load(_) => "load",
            Call::Create(..) => "create",
            Call::Apply(..) => "apply",
            Call::Touch(_) => "touch",
            Call::Delete(_) => "delete",
            Call::Take(_) => "take",
        }
    }

    /// The store key the call was about.
    pub fn key(&self) -> &str {
        match self {
            Call::Load(k)
            | Call::Create(k, _)
            | Call::Apply(k, _)
            | Call::Touch(k)
            | Call::Delete(k)
            | Call::Take(k) => k,
        }
    }
}

/// The memory store, recording every call.
#[derive(Clone, Default)]
pub struct Recorder {
    /// The store that answers.
    pub inner: Arc<MemoryStore>,
    /// Every call, in order.
    pub calls: Arc<Mutex<Vec<Call>>>,
    /// Report no expiry on load, as a store that cannot tell cheaply.
    pub hide_expiry: bool,
}

impl Recorder {
    fn push(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }

    /// The calls made since the last `drain`.
    pub fn drain(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    /// The kinds of the calls made since the last `drain`.
    pub fn drain_kinds(&self) -> Vec<&'static str> {
        self.drain().iter().map(Call::kind).collect()
    }
}

impl SessionStore for Recorder {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.push(Call::Load(key.to_string()));
        let mut record = self.inner.load(key).await?;
        if let Some(record) = record.as_mut().filter(|_| self.hide_expiry) {
            record.expires_at = None;
        }
        Ok(record)
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.push(Call::Create(key.to_string(), record.clone()));
        self.inner.create(key, record, ttl).await
    }

    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        self.push(Call::Apply(key.to_string(), changes.clone()));
        self.inner.apply(key, changes, ttl).await
    }

    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        self.push(Call::Touch(key.to_string()));
        self.inner.touch(key, ttl).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.push(Call::Delete(key.to_string()));
        self.inner.delete(key).await
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.push(Call::Take(key.to_string()));
        self.inner.take(key).await
    }
}

/// How a faulty store answers.
#[derive(Clone, Copy, Debug)]
#[allow(missing_docs)]
pub enum Fault {
    None,
    Fail,
    Hang,
}

async fn fault(fault: Fault) -> Result<(), StoreError> {
    match fault {
        Fault::None => Ok(()),
        Fault::Fail => Err(StoreError::backend("the test store is down")),
        Fault::Hang => std::future::pending().await,
    }
}

/// The memory store, with loads and writes that fail or hang on demand.
#[derive(Clone)]
pub struct Faulty {
    /// The store that answers when no fault is due.
    pub inner: Arc<MemoryStore>,
    load: Fault,
    write: Fault,
}

impl Faulty {
    /// Loads answer as `load` says, every other call as `write` says.
    pub fn new(load: Fault, write: Fault) -> Self {
        Self {
            inner: Arc::default(),
            load,
            write,
        }
    }
}

impl SessionStore for Faulty {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        fault(self.load).await?;
        self.inner.load(key).await
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        fault(self.write).await?;
        self.inner.create(key, record, ttl).await
    }

    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        fault(self.write).await?;
        self.inner.apply(key, changes, ttl).await
    }

    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        fault(self.write).await?;
        self.inner.touch(key, ttl).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        fault(self.write).await?;
        self.inner.delete(key).await
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        fault(self.write).await?;
        self.inner.take(key).await
    }
}

/// The memory store, holding the `nth` call of one operation (counted from
/// `arm`) until released: to put a logout between two steps of a login.
#[derive(Clone)]
pub struct Gated(pub Arc<GateInner>);

#[doc(hidden)]
pub struct GateInner {
    /// The store that answers.
    pub store: MemoryStore,
    op: &'static str,
    nth: usize,
    fail: bool,
    hide_expiry: bool,
    armed: std::sync::atomic::AtomicBool,
    calls: AtomicUsize,
    /// Notified when the held call arrives.
    pub paused: Notify,
    /// Notify it to let the held call through.
    pub release: Notify,
}

impl Gated {
    /// Holds the `nth` call of `op` (counted from [`arm`](Self::arm)).
    pub fn new(op: &'static str, nth: usize) -> Self {
        Self::with(op, nth, false)
    }

    /// Fails the `nth` call of `op` (counted from [`arm`](Self::arm)),
    /// writing nothing, instead of holding it.
    pub fn failing(op: &'static str, nth: usize) -> Self {
        Self::with(op, nth, true)
    }

    fn with(op: &'static str, nth: usize, fail: bool) -> Self {
        Self(Arc::new(GateInner {
            store: MemoryStore::new(),
            op,
            nth,
            fail,
            hide_expiry: false,
            armed: Default::default(),
            calls: AtomicUsize::new(0),
            paused: Notify::new(),
            release: Notify::new(),
        }))
    }

    /// Loads report no expiry, as a store that cannot tell cheaply: every
    /// read of a session then refreshes it (a `touch`).
    ///
    /// # Panics
    ///
    /// Panics if the store was cloned already.
    #[must_use]
    pub fn hiding_expiry(mut self) -> Self {
        Arc::get_mut(&mut self.0)
            .expect("hiding_expiry before the store is shared")
            .hide_expiry = true;
        self
    }

    /// Starts counting calls.
    pub fn arm(&self) {
        self.0.armed.store(true, Ordering::SeqCst);
    }

    async fn gate(&self, op: &'static str) -> Result<(), StoreError> {
        let g = &self.0;
        if op == g.op
            && g.armed.load(Ordering::SeqCst)
            && g.calls.fetch_add(1, Ordering::SeqCst) + 1 == g.nth
        {
            if g.fail {
                return Err(StoreError::backend(format!(
                    "{op} #{} failed on purpose",
                    g.nth
                )));
            }
            g.paused.notify_one();
            g.release.notified().await;
        }
        Ok(())
    }
}

impl SessionStore for Gated {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.gate("load").await?;
        let mut record = self.0.store.load(key).await?;
        if let Some(record) = record.as_mut().filter(|_| self.0.hide_expiry) {
            record.expires_at = None;
        }
        Ok(record)
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.gate("create").await?;
        self.0.store.create(key, record, ttl).await
    }

    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        self.gate("apply").await?;
        self.0.store.apply(key, changes, ttl).await
    }

    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        self.gate("touch").await?;
        self.0.store.touch(key, ttl).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.gate("delete").await?;
        self.0.store.delete(key).await
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.gate("take").await?;
        self.0.store.take(key).await
    }
}
