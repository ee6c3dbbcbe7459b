//! The one retry delay of the agent: exponential, capped, without jitter.
//!
//! A pure state machine: it hands out delays and the caller sleeps (or compares timestamps), so it is
//! deterministic under test. No site used jitter before this type existed; several holders that
//! fail together retry on their own poll intervals, so lock-step retries have not been a problem.

use std::time::Duration;

/// Delays `base, 2·base, 4·base, …` up to `cap`, until [`Backoff::reset`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    next: Duration,
    failures: u32,
}

impl Backoff {
    /// Starts at `base` (at least 1 ms, so doubling makes progress) and never exceeds `cap`
    /// (raised to `base` when smaller: a constant back-off is `Backoff::new(d, d)`).
    pub fn new(base: Duration, cap: Duration) -> Self {
        let base = base.max(Duration::from_millis(1));
        let cap = cap.max(base);
        Backoff { base, cap, next: base, failures: 0 }
    }

    /// The delay to wait after one more failure; the following one doubles, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = self.next.saturating_mul(2).min(self.cap);
        self.failures = self.failures.saturating_add(1);
        d
    }

    /// The delay [`Backoff::next_delay`] would return, without counting a failure.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// Failures counted since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// After a success: the next failure waits `base` again.
    pub fn reset(&mut self) {
        self.next = self.base;
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(ms(250), ms(1_000));
        let seq: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(seq, [ms(250), ms(500), ms(1_000), ms(1_000), ms(1_000)]);
        assert_eq!(b.failures(), 5);
        b.reset();
        assert_eq!((b.peek(), b.failures()), (ms(250), 0));
        assert_eq!(b.next_delay(), ms(250));
    }

    #[test]
    fn a_cap_below_the_base_is_a_constant_delay() {
        let mut b = Backoff::new(Duration::from_secs(60), Duration::ZERO);
        assert_eq!([b.next_delay(), b.next_delay()], [Duration::from_secs(60); 2]);
    }

    #[test]
    fn a_zero_base_still_grows() {
        let mut b = Backoff::new(Duration::ZERO, ms(4));
        assert_eq!([b.next_delay(), b.next_delay(), b.next_delay(), b.next_delay()], [ms(1), ms(2), ms(4), ms(4)]);
    }

    #[test]
    fn huge_delays_saturate_instead_of_overflowing() {
        let mut b = Backoff::new(Duration::MAX / 2 + ms(1), Duration::MAX);
        b.next_delay();
        assert_eq!(b.next_delay(), Duration::MAX);
        assert_eq!(b.next_delay(), Duration::MAX);
    }
}
