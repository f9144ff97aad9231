//! Running calls at once, round after round, until they raced.

use super::*;

/// One call of a [`race`]: how long it waits once the race starts, and
/// the call.
pub(super) type Racer<T> = (Duration, BoxFuture<'static, T>);

pub(super) fn racer<T>(late: Duration, call: impl Future<Output = T> + Send + 'static) -> Racer<T> {
    (late, Box::pin(call))
}

/// Runs the calls at once, each on a thread of its own, and returns their
/// results in order, and whether two of them were ever in flight at the
/// same time: proof that the round raced.
///
/// Threads, not tasks: a store whose calls never wait (an in-process one)
/// would run them one after the other on a runtime's worker. The threads
/// wait for each other spinning, not sleeping, so that they start together.
/// Needs as many blocking threads from the runtime as there are calls.
pub(super) async fn race<T: Send + 'static>(calls: Vec<Racer<T>>) -> (Vec<T>, bool) {
    let runtime = tokio::runtime::Handle::current();
    let count = calls.len();
    let ready = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let overlapped = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = calls
        .into_iter()
        .map(|(late, call)| {
            let runtime = runtime.clone();
            let (ready, in_flight, overlapped) = (
                Arc::clone(&ready),
                Arc::clone(&in_flight),
                Arc::clone(&overlapped),
            );
            tokio::task::spawn_blocking(move || {
                ready.fetch_add(1, Ordering::SeqCst);
                let mut spins = 0u32;
                while ready.load(Ordering::SeqCst) < count {
                    spins = spins.wrapping_add(1);
                    // Now and then let a thread that has not arrived run.
                    if spins.is_multiple_of(4096) {
                        std::thread::yield_now();
                    }
                    std::hint::spin_loop();
                }
                // Sleeping is exact enough from a millisecond on; shorter
                // waits spin.
                let released = std::time::Instant::now();
                if late >= Duration::from_millis(1) {
                    std::thread::sleep(late);
                }
                while released.elapsed() < late {
                    std::hint::spin_loop();
                }
                if in_flight.fetch_add(1, Ordering::SeqCst) > 0 {
                    overlapped.store(true, Ordering::SeqCst);
                }
                let result = runtime.block_on(call);
                in_flight.fetch_sub(1, Ordering::SeqCst);
                result
            })
        })
        .collect();
    let mut results = Vec::with_capacity(count);
    for thread in threads {
        results.push(thread.await.expect("a racing call panicked"));
    }
    (results, overlapped.load(Ordering::SeqCst))
}

/// The rounds of a race case: at least a minimum, then more until the
/// rounds have shown what proves they raced, for at most [`RACE_BUDGET`].
/// A store whose calls take a millisecond races in the first round; one
/// whose calls take a microsecond (an in-process store) may need a few
/// hundred, which take it well under a second.
pub(super) struct Rounds {
    next: usize,
    min: usize,
    deadline: std::time::Instant,
}

/// The fewest rounds of a case whose calls all start together.
pub(super) const MIN_RACE_ROUNDS: usize = 6;
pub(super) const RACE_BUDGET: Duration = Duration::from_secs(10);

impl Rounds {
    pub(super) fn new(min: usize) -> Self {
        Self {
            next: 0,
            min,
            deadline: std::time::Instant::now() + RACE_BUDGET,
        }
    }

    /// The next round, or `None` once `raced` (after the minimum) or out
    /// of time.
    pub(super) fn next(&mut self, raced: bool) -> Option<usize> {
        let more = self.next < self.min || !raced && std::time::Instant::now() < self.deadline;
        let round = self.next;
        self.next += 1;
        more.then_some(round)
    }
}

/// The rounds [`stagger`] takes to go from no wait to its longest.
pub(super) const SWEEP_ROUNDS: usize = 2 + 2 * (STAGGER_STEPS + 1);
/// Steps of a factor √2 from a microsecond to 65 ms.
pub(super) const STAGGER_STEPS: usize = 32;

/// How late each of the two sides of a race round starts: in the first two
/// rounds neither; then, from a microsecond, each pair of rounds √2 times
/// as late as the pair before (up to 65 ms), the first side in even rounds
/// and the second in odd ones. Whichever side the store serves faster soon
/// starts late enough to lose, and the rounds about that point race
/// closely, whatever the store's speed.
pub(super) fn stagger(round: usize) -> (Duration, Duration) {
    if round < 2 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let step = ((round - 2) / 2).min(STAGGER_STEPS);
    let late = Duration::from_micros(1 << (step / 2)).mul_f64(if step % 2 == 1 {
        std::f64::consts::SQRT_2
    } else {
        1.0
    });
    if round.is_multiple_of(2) {
        (late, Duration::ZERO)
    } else {
        (Duration::ZERO, late)
    }
}
