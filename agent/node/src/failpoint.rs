//! Crash injection for the fault tests: `REPLICATOOR_FAILPOINT=name` (or `name:N`, the N-th hit)
//! aborts the process at that point, like `kill -9` at that instant. Compiled to nothing without the
//! `failpoints` cargo feature (release builds and the image), so no environment variable can crash
//! a production node on purpose.

#[cfg(feature = "failpoints")]
use std::sync::{
    atomic::{AtomicU32, Ordering},
    OnceLock,
};

#[cfg(feature = "failpoints")]
static SPEC: OnceLock<Option<(String, u32)>> = OnceLock::new();
#[cfg(feature = "failpoints")]
static HITS: AtomicU32 = AtomicU32::new(0);

/// Every failpoint name, in the order a node meets them (documented for the fault tests).
pub const ALL: &[&str] = &[
    "genesis_after_propose",
    "requester_after_keys",
    "requester_after_post",
    "requester_after_delivery_seen",
    "install_before_rename",
    "requester_after_install",
    "holder_after_seal",
    "holder_after_send",
    "holder_before_checkpoint",
    "rotation_after_propose",
    "rotation_after_install",
];

#[cfg(feature = "failpoints")]
fn spec() -> &'static Option<(String, u32)> {
    SPEC.get_or_init(|| {
        let v = std::env::var("REPLICATOOR_FAILPOINT").ok()?;
        let (name, n) = match v.split_once(':') {
            Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
            None => (v, 1),
        };
        Some((name, n.max(1)))
    })
}

/// Abort here if this failpoint is armed (and this is its N-th hit).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// Abort here if this failpoint is armed (and this is its N-th hit).
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    if let Some((armed, n)) = spec() {
        if armed == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            eprintln!("failpoint {name}: aborting (simulated crash)");
            std::process::abort();
        }
    }
}
