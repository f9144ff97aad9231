//! How a near cache's feed proves that it is alive, and how long the cache
//! trusts it without a proof.
//!
//! A feed's connection can stall without closing (a NAT or a firewall that
//! drops an idle connection sends no reset): it then reports nothing, and
//! nothing tells it so. So every feed proves itself at a regular interval
//! with a round trip on the connection its invalidations come on (Redis: a
//! `PING`; PostgreSQL: the `LISTEN` again), which comes back only after
//! every invalidation sent before it. Each proof renews the cache's
//! [`Lease`]; a cache whose lease has run out serves nothing, whether or not
//! the feed's task has noticed (it may be stuck itself).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

use super::Invalidator;

/// How often a feed proves that it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// How long one proof may take. A feed that does not answer within it is
/// taken down (the cache is emptied and bypassed until the feed is back);
/// a cache whose feed has not proved itself for [`HEARTBEAT_EVERY`] plus
/// this deadline serves nothing, even before the feed notices. So a change
/// a stalled feed never reports is served at most 3 seconds (plus one
/// round trip) after the feed last proved itself.
pub const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(2);

/// How often a feed proves itself, and how long a proof may take.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rhythm {
    pub(super) every: Duration,
    pub(super) deadline: Duration,
}

impl Rhythm {
    pub(super) const DEFAULT: Self = Self {
        every: HEARTBEAT_EVERY,
        deadline: HEARTBEAT_DEADLINE,
    };

    /// How long a proof is trusted: until the next one is due, and late.
    fn term(self) -> Duration {
        self.every + self.deadline
    }
}

/// Until when a cache may serve what it holds.
pub(super) struct Lease {
    start: Instant,
    /// Nanoseconds from `start`; 0 until the first proof, `u64::MAX` for a
    /// cache that no feed keeps right.
    until: AtomicU64,
    term: Duration,
}

impl Lease {
    /// A lease that never runs out: no feed, nothing to prove.
    pub(super) fn forever() -> Self {
        Self {
            start: Instant::now(),
            until: AtomicU64::new(u64::MAX),
            term: Duration::MAX,
        }
    }

    /// A lease not yet given, renewed for `rhythm`'s term at a time.
    pub(super) fn new(rhythm: Rhythm) -> Self {
        Self {
            start: Instant::now(),
            until: AtomicU64::new(0),
            term: rhythm.term(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Whether the cache may serve now.
    pub(super) fn holds(&self) -> bool {
        let until = self.until.load(Relaxed);
        // A cache without a feed reads no clock.
        until == u64::MAX || self.now() < until
    }

    /// The feed has just proved itself: the cache may serve for one more
    /// term.
    pub(super) fn renew(&self) {
        let term = u64::try_from(self.term.as_nanos()).unwrap_or(u64::MAX);
        let until = self.now().saturating_add(term).min(u64::MAX - 1);
        self.until.fetch_max(until, Relaxed);
    }
}

/// A feed's proofs of life (from [`Invalidator::heartbeat`]): one due
/// every [`HEARTBEAT_EVERY`], each within [`HEARTBEAT_DEADLINE`].
///
/// A feed waits for [`due`](Self::due) beside its next invalidation, then
/// runs a round trip on its connection through [`prove`](Self::prove):
///
/// ```no_run
/// # use session_core::store::near::Invalidator;
/// # async fn next_invalidation() -> Option<String> { None }
/// # async fn ping() -> Result<(), std::io::Error> { Ok(()) }
/// # async fn feed(invalidator: Invalidator) {
/// let mut heartbeat = invalidator.heartbeat();
/// loop {
///     tokio::select! {
///         key = next_invalidation() => match key {
///             Some(key) => {
///                 invalidator.invalidate(&key);
///             }
///             None => break,
///         },
///         () = heartbeat.due() => {
///             if let Err(missed) = heartbeat.prove(ping()).await {
///                 eprintln!("the feed stalled: {missed}");
///                 break;
///             }
///         }
///     }
/// }
/// // Changes may have gone unreported: bypass the cache until the feed is
/// // back.
/// invalidator.suspend();
/// # }
/// ```
#[derive(Debug)]
pub struct Heartbeat {
    invalidator: Invalidator,
    tick: tokio::time::Interval,
    deadline: Duration,
}

impl Heartbeat {
    pub(super) fn new(invalidator: Invalidator, rhythm: Rhythm) -> Self {
        let first = tokio::time::Instant::now() + rhythm.every;
        let mut tick = tokio::time::interval_at(first, rhythm.every);
        // A late proof is followed by a full interval, not a burst.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            invalidator,
            tick,
            deadline: rhythm.deadline,
        }
    }

    /// Completes when the next proof is due: one interval after the
    /// previous one (after the heartbeat was made, for the first). Cancel
    /// safe, for a `tokio::select!` beside the feed's next invalidation.
    pub async fn due(&mut self) {
        self.tick.tick().await;
    }

    /// How long a proof may take.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Runs `probe`, a round trip on the feed's connection that returns
    /// only after every invalidation sent before it has been applied, and
    /// tells the cache the feed is alive ([`Invalidator::alive`]) if it
    /// succeeds within the deadline.
    ///
    /// # Errors
    ///
    /// [`Missed::Late`] when `probe` does not complete within the
    /// deadline, [`Missed::Failed`] with its error when it fails. Either
    /// way the feed may have missed changes: take it down
    /// ([`Invalidator::suspend`], or [`Invalidator::flush`] and a new
    /// connection).
    pub async fn prove<T, E>(
        &self,
        probe: impl Future<Output = Result<T, E>>,
    ) -> Result<T, Missed<E>> {
        match tokio::time::timeout(self.deadline, probe).await {
            Ok(Ok(value)) => {
                self.invalidator.alive();
                Ok(value)
            }
            Ok(Err(error)) => Err(Missed::Failed(error)),
            Err(_) => Err(Missed::Late(self.deadline)),
        }
    }
}

/// Why a feed's proof of life failed ([`Heartbeat::prove`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Missed<E> {
    /// No answer within the deadline: the connection may have stalled.
    #[error("no answer within {0:?}")]
    Late(Duration),
    /// The round trip failed.
    #[error(transparent)]
    Failed(E),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_holds_for_its_term_after_each_renewal() {
        let rhythm = Rhythm {
            every: Duration::from_millis(20),
            deadline: Duration::from_millis(20),
        };
        let lease = Lease::new(rhythm);
        assert!(!lease.holds(), "not given yet");
        lease.renew();
        assert!(lease.holds());
        std::thread::sleep(Duration::from_millis(60));
        assert!(!lease.holds(), "run out");
        lease.renew();
        assert!(lease.holds());
        assert!(Lease::forever().holds());
    }
}
