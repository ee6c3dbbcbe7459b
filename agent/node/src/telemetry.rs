//! What the agent exposes about itself: a status record (`/status`) and metrics (`/metrics`,
//! Prometheus text), served on a local HTTP endpoint (`http.rs`). Never carries secrets.
//!
//! Metrics go through the `metrics` facade into a Prometheus recorder that each [`Telemetry`] owns:
//! none is installed globally, so agents (or tests) sharing a process never mix their numbers.
//! [`Metrics`] lists every metric with its meaning; docs/operations.md §3 mirrors that list.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use serde::Serialize;
use std::{
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Mutex,
    },
    time::{SystemTime, UNIX_EPOCH},
};

/// Bucket bounds of `replicatoor_verification_seconds`: a verification takes milliseconds, and a
/// collateral fetch inside it up to seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

const REQUESTS_SEEN: &str = "replicatoor_requests_seen_total";
const REQUESTS_SERVED: &str = "replicatoor_requests_served_total";
const REQUESTS_REFUSED: &str = "replicatoor_requests_refused_total";
const REQUESTS_LOST_RACE: &str = "replicatoor_requests_lost_race_total";
const REQUESTS_DEFERRED: &str = "replicatoor_requests_deferred_total";
const REQUESTS_ABSTAINED: &str = "replicatoor_requests_abstained_total";
const REQUESTS_THROTTLED: &str = "replicatoor_requests_throttled_total";
const RPC_ERRORS: &str = "replicatoor_rpc_errors_total";
const VERIFICATION_SECONDS: &str = "replicatoor_verification_seconds";
const LAST_PROCESSED_BLOCK: &str = "replicatoor_last_processed_block";
const CHAIN_HEAD: &str = "replicatoor_chain_head";
const HEAD_LAG_BLOCKS: &str = "replicatoor_head_lag_blocks";
const SECRET_INSTALLED: &str = "replicatoor_secret_installed";
const ROLE: &str = "replicatoor_role";
const TRUST_MODE: &str = "replicatoor_trust_mode";
const CONFIG_SELF_MEASURED: &str = "replicatoor_config_self_measured";
const UNPROVEN_READS: &str = "replicatoor_unproven_reads_total";
const OWN_REFERENCE_EXPIRES_AT: &str = "replicatoor_own_reference_expires_at_seconds";
const TRIAGED: &str = "replicatoor_requests_triaged_total";
const JUNK_TRIAGED: &str = "replicatoor_junk_triaged_total";
const TRIAGE_MICROSECONDS: &str = "replicatoor_triage_microseconds_total";
const JUNK_QUEUE: &str = "replicatoor_junk_queue";
const JUNK_DROPPED: &str = "replicatoor_junk_dropped_total";
const REFUSAL_GAS: &str = "replicatoor_refusal_gas_total";
const REFUSAL_GAS_LAST_HOUR: &str = "replicatoor_refusal_gas_last_hour";
const REFUSAL_BUDGET_SPENT: &str = "replicatoor_refusal_gas_budget_spent_total";
/// Every metric above: the exposition test and docs/operations.md's table are checked against this list.
#[cfg(test)]
const ALL: [&str; 26] = [
    REQUESTS_SEEN,
    REQUESTS_SERVED,
    REQUESTS_REFUSED,
    REQUESTS_LOST_RACE,
    REQUESTS_DEFERRED,
    REQUESTS_ABSTAINED,
    REQUESTS_THROTTLED,
    RPC_ERRORS,
    VERIFICATION_SECONDS,
    LAST_PROCESSED_BLOCK,
    CHAIN_HEAD,
    HEAD_LAG_BLOCKS,
    SECRET_INSTALLED,
    ROLE,
    TRUST_MODE,
    CONFIG_SELF_MEASURED,
    UNPROVEN_READS,
    OWN_REFERENCE_EXPIRES_AT,
    TRIAGED,
    JUNK_TRIAGED,
    TRIAGE_MICROSECONDS,
    JUNK_QUEUE,
    JUNK_DROPPED,
    REFUSAL_GAS,
    REFUSAL_GAS_LAST_HOUR,
    REFUSAL_BUDGET_SPENT,
];

/// A role as shown on /status and in `replicatoor_role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Starting,
    Genesis,
    Requester,
    Holder,
    /// Holds its secret but serves nothing: its epoch ended with a custody reset (`Status::stopped` says why).
    Stopped,
}

impl Role {
    const ALL: [Role; 5] = [Role::Starting, Role::Genesis, Role::Requester, Role::Holder, Role::Stopped];

    fn name(self) -> &'static str {
        match self {
            Role::Starting => "starting",
            Role::Genesis => "genesis",
            Role::Requester => "requester",
            Role::Holder => "holder",
            Role::Stopped => "stopped",
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
    /// How this node authenticates the chain state it acts on: `rpc-unverified` (no pinned
    /// deployment), `beacon-light-client`, `beacon-custom` (a network the pin spells out), `rpc-quorum`,
    /// or `simulated-beacon` (dev).
    pub trust_mode: &'static str,
    /// When this node's own version is scheduled to end (unix seconds), if it is.
    pub own_reference_expires_at: Option<u64>,
    /// Whether the node's settings were checked against the compose its CVM measured:
    /// `self-measured (service … of compose …)` or `NOT self-measured …` (simulated quotes, dev only).
    pub configuration: String,
    /// New node: why its own request is still pending (PROTOCOL.md §2 says what to do), while it is.
    pub pending: Option<String>,
    /// Holder: junk requests waiting for their refusal.
    pub junk_queue: u64,
    /// Why the node serves nothing while its role is `stopped`, and what its operator can do.
    pub stopped: Option<String>,
}

/// The last request this holder handled.
#[derive(Debug, Clone, Serialize)]
pub struct LastRequest {
    pub id: String,
    pub outcome: String,
    pub at_unix: u64,
}

/// The trust mode of a node without a pinned deployment.
pub const UNVERIFIED: &str = "rpc-unverified";

/// Every metric the agent exposes, registered once on the agent's own recorder (and
/// `replicatoor_trust_mode{mode}` (gauge), 1 for the mode in use, set by [`Telemetry::set_trust_mode`]).
struct Metrics {
    /// `replicatoor_requests_seen_total` (counter): SecretRequested logs handled by this holder.
    requests_seen: Counter,
    /// `replicatoor_requests_served_total` (counter): deliveries this holder got mined.
    requests_served: Counter,
    // `replicatoor_requests_refused_total{reason}` (counter): refusals this holder got mined, by
    // reason name (PROTOCOL.md §5.2); a reason appears once it was first counted.
    /// `replicatoor_requests_lost_race_total` (counter): requests another holder answered first.
    requests_lost_race: Counter,
    /// `replicatoor_requests_deferred_total` (counter): evaluations postponed by a local fault
    /// (collateral, RPC); retried later.
    requests_deferred: Counter,
    /// `replicatoor_requests_abstained_total` (counter): simulated requests left to holders that trust
    /// the simulated PKI.
    requests_abstained: Counter,
    /// `replicatoor_requests_throttled_total` (counter): refusals not posted because the per-step
    /// budget was spent (junk flood).
    requests_throttled: Counter,
    /// `replicatoor_rpc_errors_total` (counter): failed chain calls (the agent retries them).
    rpc_errors: Counter,
    /// `replicatoor_requests_triaged_total` (counter): requests put through the cheap checks on
    /// arrival (PROTOCOL.md §5.1 rows 0-2 and 9-13), junk or not.
    triaged: Counter,
    /// `replicatoor_junk_triaged_total` (counter): of those, requests that failed them (junk: refused
    /// from the junk queue, behind every request that passed).
    junk_triaged: Counter,
    /// `replicatoor_triage_microseconds_total` (counter): time spent in those checks; triaged /
    /// this is the holder's junk-evaluation rate (`script/bench.sh` flood part).
    triage_microseconds: Counter,
    /// `replicatoor_junk_queue` (gauge): junk requests waiting for their refusal.
    junk_queue: Gauge,
    /// `replicatoor_junk_dropped_total` (counter): junk requests the full queue did not take (left
    /// pending, never refused by this holder).
    junk_dropped: Counter,
    /// `replicatoor_refusal_gas_total` (counter): gas of this holder's mined refusals.
    refusal_gas: Counter,
    /// `replicatoor_refusal_gas_last_hour` (gauge): refusal gas spent in the last hour, in-flight
    /// refusals at their estimate (the budget is `--max-refusal-gas-per-hour`).
    refusal_gas_last_hour: Gauge,
    /// `replicatoor_refusal_gas_budget_spent_total` (counter): steps that held junk refusals back
    /// because the hourly refusal gas budget was spent.
    refusal_budget_spent: Counter,
    /// `replicatoor_verification_seconds` (histogram, buckets [`BUCKETS`]): time of the verification
    /// pipeline per request.
    verification_seconds: Histogram,
    /// `replicatoor_last_processed_block` (gauge): last block whose requests were handled.
    last_processed_block: Gauge,
    /// `replicatoor_chain_head` (gauge): latest block seen.
    chain_head: Gauge,
    /// `replicatoor_head_lag_blocks` (gauge): chain head minus last processed block.
    head_lag_blocks: Gauge,
    /// `replicatoor_secret_installed` (gauge): 1 once this node holds the secret.
    secret_installed: Gauge,
    /// `replicatoor_role{role}` (gauge): 1 for the current role, 0 for the others (every role is
    /// always listed, so a role change never leaves a stale 1 behind).
    role: [(Role, Gauge); 5],
}

impl Metrics {
    fn register() -> Self {
        describe_counter!(REQUESTS_SEEN, "Secret requests handled by this holder.");
        describe_counter!(REQUESTS_SERVED, "Deliveries this holder got mined.");
        describe_counter!(REQUESTS_REFUSED, "Refusals this holder got mined, by reason.");
        describe_counter!(REQUESTS_LOST_RACE, "Requests another holder answered first.");
        describe_counter!(REQUESTS_DEFERRED, "Evaluations postponed by a local fault.");
        describe_counter!(REQUESTS_ABSTAINED, "Requests left to other holders.");
        describe_counter!(REQUESTS_THROTTLED, "Refusals not posted (budget spent).");
        describe_counter!(RPC_ERRORS, "Failed chain calls (retried).");
        describe_counter!(TRIAGED, "Requests put through the cheap checks on arrival.");
        describe_counter!(JUNK_TRIAGED, "Requests that failed the cheap checks (junk).");
        describe_counter!(TRIAGE_MICROSECONDS, "Time spent in the cheap checks, microseconds.");
        describe_gauge!(JUNK_QUEUE, "Junk requests waiting for their refusal.");
        describe_counter!(JUNK_DROPPED, "Junk requests the full junk queue did not take.");
        describe_counter!(REFUSAL_GAS, "Gas of this holder's mined refusals.");
        describe_gauge!(REFUSAL_GAS_LAST_HOUR, "Refusal gas spent in the last hour (in flight: estimated).");
        describe_counter!(REFUSAL_BUDGET_SPENT, "Steps that held refusals back: hourly refusal gas budget spent.");
        describe_histogram!(VERIFICATION_SECONDS, "Time of the verification pipeline per request.");
        describe_gauge!(LAST_PROCESSED_BLOCK, "Last block whose requests were handled.");
        describe_gauge!(CHAIN_HEAD, "Latest block seen.");
        describe_gauge!(HEAD_LAG_BLOCKS, "Chain head minus last processed block.");
        describe_gauge!(SECRET_INSTALLED, "1 once this node holds the secret.");
        describe_gauge!(ROLE, "The agent's current role.");
        Metrics {
            requests_seen: counter!(REQUESTS_SEEN),
            requests_served: counter!(REQUESTS_SERVED),
            requests_lost_race: counter!(REQUESTS_LOST_RACE),
            requests_deferred: counter!(REQUESTS_DEFERRED),
            requests_abstained: counter!(REQUESTS_ABSTAINED),
            requests_throttled: counter!(REQUESTS_THROTTLED),
            rpc_errors: counter!(RPC_ERRORS),
            triaged: counter!(TRIAGED),
            junk_triaged: counter!(JUNK_TRIAGED),
            triage_microseconds: counter!(TRIAGE_MICROSECONDS),
            junk_queue: gauge!(JUNK_QUEUE),
            junk_dropped: counter!(JUNK_DROPPED),
            refusal_gas: counter!(REFUSAL_GAS),
            refusal_gas_last_hour: gauge!(REFUSAL_GAS_LAST_HOUR),
            refusal_budget_spent: counter!(REFUSAL_BUDGET_SPENT),
            verification_seconds: histogram!(VERIFICATION_SECONDS),
            last_processed_block: gauge!(LAST_PROCESSED_BLOCK),
            chain_head: gauge!(CHAIN_HEAD),
            head_lag_blocks: gauge!(HEAD_LAG_BLOCKS),
            secret_installed: gauge!(SECRET_INSTALLED),
            role: Role::ALL.map(|r| (r, gauge!(ROLE, "role" => r.name()))),
        }
    }

    /// The gauges that mirror the status record.
    fn show(&self, s: &Status) {
        let cp = s.checkpoint.unwrap_or(0);
        let head = s.chain_head.unwrap_or(0);
        self.last_processed_block.set(cp as f64);
        self.chain_head.set(head as f64);
        self.head_lag_blocks.set(head.saturating_sub(cp) as f64);
        self.secret_installed.set(f64::from(u8::from(s.secret_installed)));
        for (r, g) in &self.role {
            g.set(f64::from(u8::from(*r == s.role)));
        }
    }
}

/// Shared telemetry of one agent process.
pub struct Telemetry {
    status: Mutex<Status>,
    heartbeat: AtomicU64,
    recorder: PrometheusRecorder,
    exposition: PrometheusHandle,
    metrics: Metrics,
}

impl Telemetry {
    pub fn new(chain_id: u64, contract: String, simulated_quotes: bool) -> Self {
        let status = Status {
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
            trust_mode: UNVERIFIED,
            own_reference_expires_at: None,
            configuration: crate::config::Measurement::NotSelfMeasured.describe(),
            pending: None,
            junk_queue: 0,
            stopped: None,
        };
        // Without buckets the exporter would render the histogram as a summary.
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(VERIFICATION_SECONDS.into()), &BUCKETS)
            .expect("BUCKETS is not empty")
            .build_recorder();
        let metrics = metrics::with_local_recorder(&recorder, Metrics::register);
        metrics.show(&status);
        Telemetry {
            status: Mutex::new(status),
            heartbeat: AtomicU64::new(now()),
            exposition: recorder.handle(),
            recorder,
            metrics,
        }
    }

    /// Update the status record.
    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
            self.metrics.show(&s);
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
        self.metrics.requests_seen.increment(1);
    }
    /// Name how chain state is authenticated: `/status` and `replicatoor_trust_mode{mode}` = 1.
    pub fn set_trust_mode(&self, mode: &'static str) {
        metrics::with_local_recorder(&self.recorder, || {
            describe_gauge!(TRUST_MODE, "How chain state is authenticated (1 for the mode in use).");
            gauge!(TRUST_MODE, "mode" => mode).set(1.0);
        });
        self.update(|s| s.trust_mode = mode);
    }

    /// Say whether the configuration is self-measured: `/status` and `replicatoor_config_self_measured`
    /// (1 when checked against the measured compose, 0 when not).
    pub fn set_configuration(&self, m: &crate::config::Measurement) {
        metrics::with_local_recorder(&self.recorder, || {
            describe_gauge!(CONFIG_SELF_MEASURED, "1 when the settings were checked against the measured compose.");
            gauge!(CONFIG_SELF_MEASURED).set(if m.is_self_measured() { 1.0 } else { 0.0 });
        });
        self.update(|s| s.configuration = m.describe());
    }

    /// A read the verified chain view could not prove (no fresh trusted header, or an RPC answer
    /// that does not prove itself): nothing was acted on, the role retries. `role` labels who read.
    pub fn unproven_read(&self, role: &'static str) {
        metrics::with_local_recorder(&self.recorder, || {
            describe_counter!(
                UNPROVEN_READS,
                "Chain reads the verified view could not prove (stale header, missing or wrong proof); never acted on."
            );
            counter!(UNPROVEN_READS, "role" => role).increment(1)
        });
    }

    /// When this node's own version (OS or app reference) is scheduled to end, unix seconds (None:
    /// not scheduled; the gauge reads 0). Also in `/status` as `own_reference_expires_at`.
    pub fn set_own_reference_expiry(&self, at: Option<u64>) {
        metrics::with_local_recorder(&self.recorder, || {
            describe_gauge!(
                OWN_REFERENCE_EXPIRES_AT,
                "When this node's own version is scheduled to end (unix seconds; 0: not scheduled)."
            );
            gauge!(OWN_REFERENCE_EXPIRES_AT).set(at.unwrap_or(0) as f64);
        });
        self.update(|s| s.own_reference_expires_at = at);
    }

    pub fn rpc_error(&self) {
        self.metrics.rpc_errors.increment(1);
    }

    /// A step's intake: `triaged` requests through the cheap checks in `micros`, `junk` of them failed.
    pub fn triaged(&self, triaged: u64, junk: u64, micros: u64) {
        let m = &self.metrics;
        m.triaged.increment(triaged);
        m.junk_triaged.increment(junk);
        m.triage_microseconds.increment(micros);
    }

    /// The junk queue's length, and `dropped` more junk requests it did not take.
    pub fn junk_queue(&self, len: usize, dropped: u64) {
        self.metrics.junk_queue.set(len as f64);
        self.metrics.junk_dropped.increment(dropped);
    }

    /// A mined refusal used `gas`.
    pub fn refusal_gas(&self, gas: u64) {
        self.metrics.refusal_gas.increment(gas);
    }

    /// Refusal gas spent in the last hour (in flight: estimated).
    pub fn refusal_gas_last_hour(&self, gas: u64) {
        self.metrics.refusal_gas_last_hour.set(gas as f64);
    }

    /// A step held refusals back: the hourly refusal gas budget is spent.
    pub fn refusal_budget_spent(&self) {
        self.metrics.refusal_budget_spent.increment(1);
    }

    /// Record what became of a request.
    pub fn outcome(&self, id: &str, outcome: Tally) {
        let m = &self.metrics;
        let name = match outcome {
            Tally::Served => {
                m.requests_served.increment(1);
                "served"
            }
            Tally::Refused(reason) => {
                metrics::with_local_recorder(&self.recorder, || {
                    counter!(REQUESTS_REFUSED, "reason" => reason).increment(1)
                });
                "refused"
            }
            Tally::LostRace => {
                m.requests_lost_race.increment(1);
                "lost_race"
            }
            Tally::Deferred => {
                m.requests_deferred.increment(1);
                "deferred"
            }
            Tally::Abstained => {
                m.requests_abstained.increment(1);
                "abstained"
            }
            Tally::Throttled => {
                m.requests_throttled.increment(1);
                "throttled"
            }
        };
        self.update(|s| {
            s.last_request = Some(LastRequest { id: id.to_string(), outcome: name.into(), at_unix: now() })
        });
    }

    pub fn observe_verification(&self, seconds: f64) {
        self.metrics.verification_seconds.record(seconds);
        // Fold the sample into its buckets now: nothing piles up between scrapes (or without any).
        self.exposition.run_upkeep();
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        self.exposition.render()
    }
}

/// What became of a request, as counted by [`Telemetry::outcome`] (the stored record is `store::Outcome`).
#[derive(Debug, Clone, Copy)]
pub enum Tally {
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
        t.outcome("1", Tally::Served);
        t.outcome("2", Tally::Refused("app_reference_not_allowed"));
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

    /// The names, types and values that docs/operations.md, script/bench.sh and the tests read.
    #[test]
    fn exposition_keeps_names_types_and_integer_values() {
        let t = Telemetry::new(1, "0xabc".into(), false);
        t.update(|s| {
            s.role = Role::Requester;
            s.checkpoint = Some(20_000_123);
            s.chain_head = Some(20_000_125);
            s.secret_installed = true;
        });
        t.outcome("3", Tally::LostRace);
        t.outcome("4", Tally::Refused("quote_invalid"));
        t.outcome("5", Tally::Refused("quote_invalid"));
        t.observe_verification(0.02);
        t.observe_verification(2.0);
        let m = t.render();
        for (name, kind) in [
            ("requests_seen_total", "counter"),
            ("requests_served_total", "counter"),
            ("requests_refused_total", "counter"),
            ("requests_lost_race_total", "counter"),
            ("requests_deferred_total", "counter"),
            ("requests_abstained_total", "counter"),
            ("requests_throttled_total", "counter"),
            ("rpc_errors_total", "counter"),
            ("verification_seconds", "histogram"),
            ("last_processed_block", "gauge"),
            ("chain_head", "gauge"),
            ("head_lag_blocks", "gauge"),
            ("secret_installed", "gauge"),
            ("role", "gauge"),
        ] {
            assert!(m.contains(&format!("# TYPE replicatoor_{name} {kind}\n")), "{name}: {m}");
            assert!(m.contains(&format!("# HELP replicatoor_{name} ")), "{name}: {m}");
        }
        // Whole numbers, as `[ "$cp" -ge N ]` in script/bench.sh needs.
        for line in [
            "replicatoor_last_processed_block 20000123",
            "replicatoor_chain_head 20000125",
            "replicatoor_head_lag_blocks 2",
            "replicatoor_secret_installed 1",
            "replicatoor_requests_seen_total 0",
            "replicatoor_requests_lost_race_total 1",
            "replicatoor_requests_refused_total{reason=\"quote_invalid\"} 2",
            "replicatoor_verification_seconds_bucket{le=\"0.025\"} 1",
            "replicatoor_verification_seconds_bucket{le=\"5\"} 2",
            "replicatoor_verification_seconds_bucket{le=\"+Inf\"} 2",
            "replicatoor_verification_seconds_count 2",
            "replicatoor_role{role=\"requester\"} 1",
            "replicatoor_role{role=\"starting\"} 0",
        ] {
            assert!(m.lines().any(|l| l == line), "missing {line:?}:\n{m}");
        }
    }

    /// docs/operations.md's metrics table names every metric the agent defines, and no other.
    #[test]
    fn operations_md_documents_every_metric_and_no_other() {
        let doc = include_str!("../../../docs/operations.md");
        let documented: std::collections::BTreeSet<&str> = doc
            .lines()
            .filter(|l| l.starts_with("| `replicatoor_"))
            .flat_map(|l| l.split('|').nth(1).unwrap_or_default().split('`'))
            .filter(|w| w.starts_with("replicatoor_"))
            .map(|w| w.split('{').next().unwrap_or(w))
            .collect();
        let defined: std::collections::BTreeSet<&str> = ALL.into_iter().collect();
        assert_eq!(documented, defined, "docs/operations.md's metrics table against telemetry.rs");
    }

    /// Each agent value has its own recorder: two in one process do not share counts.
    #[test]
    fn two_agents_in_one_process_keep_their_own_numbers() {
        let (a, b) = (Telemetry::new(1, "0xa".into(), false), Telemetry::new(1, "0xb".into(), false));
        a.outcome("1", Tally::Served);
        a.outcome("2", Tally::Refused("quote_invalid"));
        assert!(a.render().lines().any(|l| l == "replicatoor_requests_served_total 1"));
        let m = b.render();
        assert!(m.lines().any(|l| l == "replicatoor_requests_served_total 0"), "{m}");
        assert!(!m.contains("reason="), "{m}");
    }
}
