//! What the agent exposes about itself: counters and gauges (Prometheus text format) and a status
//! record, served on a local HTTP endpoint (`http.rs`). Never carries secrets.
//!
//! Metrics (all prefixed `replicatoor_`):
//! - `requests_seen_total`: SecretRequested logs handled by this holder
//! - `requests_served_total`, `requests_refused_total{reason}`, `requests_lost_race_total`,
//!   `requests_deferred_total`, `requests_abstained_total`, `requests_throttled_total`
//! - `verification_seconds` (histogram): time of the verification pipeline per request
//! - `rpc_errors_total`: failed chain calls (the agent retries them)
//! - `last_processed_block`, `chain_head`, `head_lag_blocks`: follower progress
//! - `secret_installed` (0/1), `role{role}` (1 for the current role)

use serde::Serialize;
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Mutex,
    },
    time::{SystemTime, UNIX_EPOCH},
};

const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// A role as shown on /status and in `replicatoor_role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Starting,
    Genesis,
    Requester,
    Holder,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Starting => "starting",
            Role::Genesis => "genesis",
            Role::Requester => "requester",
            Role::Holder => "holder",
        }
    }
}

/// The /status document.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub role: Role,
    pub chain_id: u64,
    pub contract: String,
    pub cluster: Option<String>,
    pub epoch: Option<u64>,
    pub own_request: Option<String>,
    pub checkpoint: Option<u64>,
    pub chain_head: Option<u64>,
    pub last_request: Option<LastRequest>,
    pub secret_installed: bool,
    pub simulated_quotes: bool,
}

/// The last request this holder handled.
#[derive(Debug, Clone, Serialize)]
pub struct LastRequest {
    pub id: String,
    pub outcome: String,
    pub at_unix: u64,
}

/// Shared telemetry of one agent process.
pub struct Telemetry {
    status: Mutex<Status>,
    seen: AtomicU64,
    served: AtomicU64,
    lost_race: AtomicU64,
    deferred: AtomicU64,
    abstained: AtomicU64,
    throttled: AtomicU64,
    rpc_errors: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    verify_buckets: [AtomicU64; BUCKETS.len()],
    verify_count: AtomicU64,
    verify_sum_micros: AtomicU64,
    heartbeat: AtomicU64,
}

impl Telemetry {
    pub fn new(chain_id: u64, contract: String, simulated_quotes: bool) -> Self {
        Telemetry {
            status: Mutex::new(Status {
                role: Role::Starting,
                chain_id,
                contract,
                cluster: None,
                epoch: None,
                own_request: None,
                checkpoint: None,
                chain_head: None,
                last_request: None,
                secret_installed: false,
                simulated_quotes,
            }),
            seen: AtomicU64::new(0),
            served: AtomicU64::new(0),
            lost_race: AtomicU64::new(0),
            deferred: AtomicU64::new(0),
            abstained: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            rpc_errors: AtomicU64::new(0),
            refused: Mutex::new(BTreeMap::new()),
            verify_buckets: Default::default(),
            verify_count: AtomicU64::new(0),
            verify_sum_micros: AtomicU64::new(0),
            heartbeat: AtomicU64::new(now()),
        }
    }

    /// Update the status record.
    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
        self.beat();
    }

    pub fn status(&self) -> Option<Status> {
        self.status.lock().ok().map(|s| s.clone())
    }

    /// The main loop is alive.
    pub fn beat(&self) {
        self.heartbeat.store(now(), Relaxed);
    }

    /// Seconds since the main loop last made progress.
    pub fn idle_seconds(&self) -> u64 {
        now().saturating_sub(self.heartbeat.load(Relaxed))
    }

    pub fn request_seen(&self) {
        self.seen.fetch_add(1, Relaxed);
    }
    pub fn rpc_error(&self) {
        self.rpc_errors.fetch_add(1, Relaxed);
    }

    /// Record what became of a request.
    pub fn outcome(&self, id: &str, outcome: Outcome) {
        let name = match outcome {
            Outcome::Served => {
                self.served.fetch_add(1, Relaxed);
                "served"
            }
            Outcome::Refused(reason) => {
                if let Ok(mut m) = self.refused.lock() {
                    *m.entry(reason).or_default() += 1;
                }
                "refused"
            }
            Outcome::LostRace => {
                self.lost_race.fetch_add(1, Relaxed);
                "lost_race"
            }
            Outcome::Deferred => {
                self.deferred.fetch_add(1, Relaxed);
                "deferred"
            }
            Outcome::Abstained => {
                self.abstained.fetch_add(1, Relaxed);
                "abstained"
            }
            Outcome::Throttled => {
                self.throttled.fetch_add(1, Relaxed);
                "throttled"
            }
        };
        self.update(|s| {
            s.last_request = Some(LastRequest { id: id.to_string(), outcome: name.into(), at_unix: now() })
        });
    }

    pub fn observe_verification(&self, seconds: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                self.verify_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.verify_count.fetch_add(1, Relaxed);
        self.verify_sum_micros.fetch_add((seconds * 1e6) as u64, Relaxed);
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let counter = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                o,
                "# HELP replicatoor_{name} {help}\n# TYPE replicatoor_{name} counter\nreplicatoor_{name} {v}"
            );
        };
        let gauge = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                o,
                "# HELP replicatoor_{name} {help}\n# TYPE replicatoor_{name} gauge\nreplicatoor_{name} {v}"
            );
        };
        counter(&mut o, "requests_seen_total", "Secret requests handled by this holder.", self.seen.load(Relaxed));
        counter(&mut o, "requests_served_total", "Deliveries this holder got mined.", self.served.load(Relaxed));
        let _ = writeln!(o, "# HELP replicatoor_requests_refused_total Refusals this holder got mined, by reason.");
        let _ = writeln!(o, "# TYPE replicatoor_requests_refused_total counter");
        if let Ok(m) = self.refused.lock() {
            for (reason, n) in m.iter() {
                let _ = writeln!(o, "replicatoor_requests_refused_total{{reason=\"{reason}\"}} {n}");
            }
        }
        counter(
            &mut o,
            "requests_lost_race_total",
            "Requests another holder answered first.",
            self.lost_race.load(Relaxed),
        );
        counter(
            &mut o,
            "requests_deferred_total",
            "Evaluations postponed by a local fault.",
            self.deferred.load(Relaxed),
        );
        counter(&mut o, "requests_abstained_total", "Requests left to other holders.", self.abstained.load(Relaxed));
        counter(
            &mut o,
            "requests_throttled_total",
            "Refusals not posted (budget spent).",
            self.throttled.load(Relaxed),
        );
        counter(&mut o, "rpc_errors_total", "Failed chain calls (retried).", self.rpc_errors.load(Relaxed));
        let _ = writeln!(o, "# HELP replicatoor_verification_seconds Time of the verification pipeline per request.");
        let _ = writeln!(o, "# TYPE replicatoor_verification_seconds histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "replicatoor_verification_seconds_bucket{{le=\"{b}\"}} {}",
                self.verify_buckets[i].load(Relaxed)
            );
        }
        let count = self.verify_count.load(Relaxed);
        let _ = writeln!(o, "replicatoor_verification_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ =
            writeln!(o, "replicatoor_verification_seconds_sum {}", self.verify_sum_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(o, "replicatoor_verification_seconds_count {count}");
        if let Some(s) = self.status() {
            let cp = s.checkpoint.unwrap_or(0);
            let head = s.chain_head.unwrap_or(0);
            gauge(&mut o, "last_processed_block", "Last block whose requests were handled.", cp);
            gauge(&mut o, "chain_head", "Latest block seen.", head);
            gauge(&mut o, "head_lag_blocks", "Chain head minus last processed block.", head.saturating_sub(cp));
            gauge(&mut o, "secret_installed", "1 once this node holds the secret.", u64::from(s.secret_installed));
            let _ = writeln!(o, "# HELP replicatoor_role The agent's current role.\n# TYPE replicatoor_role gauge");
            let _ = writeln!(o, "replicatoor_role{{role=\"{}\"}} 1", s.role.name());
        }
        o
    }
}

/// Outcomes counted by [`Telemetry::outcome`].
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Served,
    Refused(&'static str),
    LostRace,
    Deferred,
    Abstained,
    Throttled,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_status() {
        let t = Telemetry::new(31337, "0xabc".into(), false);
        t.request_seen();
        t.outcome("1", Outcome::Served);
        t.outcome("2", Outcome::Refused("app_reference_not_allowed"));
        t.observe_verification(0.004);
        t.update(|s| {
            s.role = Role::Holder;
            s.checkpoint = Some(10);
            s.chain_head = Some(13);
        });
        let m = t.render();
        assert!(m.contains("replicatoor_requests_served_total 1"), "{m}");
        assert!(m.contains("replicatoor_requests_refused_total{reason=\"app_reference_not_allowed\"} 1"), "{m}");
        assert!(m.contains("replicatoor_verification_seconds_bucket{le=\"0.005\"} 1"), "{m}");
        assert!(m.contains("replicatoor_verification_seconds_bucket{le=\"0.0025\"} 0"), "{m}");
        assert!(m.contains("replicatoor_head_lag_blocks 3"), "{m}");
        assert!(m.contains("replicatoor_role{role=\"holder\"} 1"), "{m}");
        assert_eq!(t.status().unwrap().last_request.unwrap().outcome, "refused");
    }
}
