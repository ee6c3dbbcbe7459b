//! The TD's clocks: the one port every time on the trust path comes through, so what each decision
//! reads of time is named in one place, and a test (or libfaketime, in the end-to-end suites) can
//! move the wall clock and see what depends on it.
//!
//! Two clocks, trusted differently (SECURITY.md, "Time"):
//! * the **wall clock** ([`Clock::unix`]) is the host's: it sets the guest's initial time and its NTP
//!   answers, so a malicious operator can put it anywhere. It bounds how old a header may be
//!   (`max_age_secs`), which stops an honest host's stale view, never a malicious one's; nothing that
//!   releases the secret relies on it alone;
//! * the **monotonic clock** ([`Clock::monotonic`]) counts from the TD's own TSC, which the TDX module
//!   virtualizes and the host cannot set or scale once the TD runs. It cannot tell the date, only how
//!   long something took, and that is what the release needs: the time between the random commitment
//!   a holder draws and the trusted header that shows it (PROTOCOL.md §5.3).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Where a decision reads the time.
pub trait Clock: Send + Sync {
    /// Unix seconds by the TD's wall clock (the host's to set: see the module docs).
    fn unix(&self) -> u64;
    /// The TD's monotonic clock (the host cannot set it).
    fn monotonic(&self) -> Instant;
}

/// The TD's own clocks: `SystemTime` (CLOCK_REALTIME) and `Instant` (CLOCK_MONOTONIC, from the TSC
/// inside a TDX guest).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix(&self) -> u64 {
        // A wall clock before 1970 reads as 0: every header is then "from the future" and fresh by it,
        // which is why the wall clock alone never releases anything.
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
    }

    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}
