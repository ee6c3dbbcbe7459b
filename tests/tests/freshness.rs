//! Freshness the host cannot fake (issue #25), with real agent processes on anvil. The machine's
//! operator controls the holder's RPC and beacon URLs and its wall clock. It freezes both views just
//! after a genuine request, the owner revokes the app one block later, and the holder is then started
//! on the frozen view: with its clock honest (deciding seconds after the revocation, inside
//! `max_age_secs`), and with its clock a day behind (the frozen view older than `max_age_secs`). A
//! holder must not let a sealed delivery leave the TD in either case: the proxy counts every
//! `deliverSecret` it is handed (to estimate, call or send).

use alloy::sol_types::SolCall;
use replicatoor_chain::{
    bindings::UpgradeOperator as Op,
    deployment::{PinnedDeployment, TrustRoot},
};
use replicatoor_core::refusal::Refusal;
use replicatoor_testkit::beacon::{self, Committee, SimBeacon};
use replicatoor_tests::{
    compose_good, compose_hash,
    proxy::{FrozenRpc, Watch},
    wait_until, Net, Proc,
};
use serde_json::Value;
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

const T: Duration = Duration::from_secs(90);

/// The libfaketime preload (Debian package `faketime`).
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The hex calldata (no 0x) of a call's `input`/`data`, or a raw transaction.
fn call_data(req: &Value) -> String {
    let first = &req["params"][0];
    first["input"]
        .as_str()
        .or_else(|| first["data"].as_str())
        .or_else(|| first.as_str())
        .unwrap_or_default()
        .trim_start_matches("0x")
        .to_string()
}

/// A pin for `b` (simulated beacon) with the given freshness bound.
fn pin(net: &Net, b: &SimBeacon, max_age_secs: u64) -> String {
    let n = b.network();
    PinnedDeployment {
        chain_id: 31337,
        contract: net.contract,
        start_block: net.start,
        trust: TrustRoot::SimulatedBeacon {
            genesis_validators_root: n.genesis_validators_root,
            genesis_time: n.genesis_time,
            seconds_per_slot: n.seconds_per_slot,
            checkpoint: b.checkpoint().block_root,
            max_age_secs,
            // Short, so the suite sees a holder give up on a commitment the frozen view never shows.
            reveal_within_secs: 10,
        },
    }
    .to_toml()
}

/// The operator's setup: an RPC it can freeze, a beacon that follows that RPC (so it freezes with
/// it), and a tally of the `deliverSecret` calls for request 1 the holder hands it.
struct Frozen {
    net: Net,
    rpc: FrozenRpc,
    beacon: SimBeacon,
    deliveries: Arc<Mutex<Vec<String>>>,
}

impl Frozen {
    async fn start(name: &str) -> Frozen {
        let net = Net::start(name, Net::dev_policy()).await;
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let kept = deliveries.clone();
        let word = format!("{}{:064x}", hex::encode(Op::deliverSecretCall::SELECTOR), 1);
        let watch: Watch = Arc::new(move |q: &Value| {
            let data = call_data(q);
            if data.contains(&word) {
                kept.lock().unwrap().push(format!("{}: {}", q["method"], &data[..data.len().min(80)]));
            }
        });
        let rpc = FrozenRpc::start(&net.url, watch).await;
        let beacon = beacon::serve(rpc.url(), "127.0.0.1:0".parse().unwrap(), Committee::Public)
            .await
            .expect("simulated beacon");
        Frozen { net, rpc, beacon, deliveries }
    }

    fn sealed_deliveries(&self) -> Vec<String> {
        self.deliveries.lock().unwrap().clone()
    }

    /// Genesis through the operator's RPC and beacon, the holder stopped; a new node's request
    /// buried under the holder's confirmation depth; then both views frozen at that head and the
    /// app revoked one block later (mined on the real chain, invisible through the frozen views).
    async fn freeze_after_a_request_then_revoke(&self, pin: &str) -> Proc {
        let mut holder =
            self.net.genesis_via(self.rpc.url(), 1, &["--deployment", pin, "--beacon-url", self.beacon.url()]).await;
        holder.terminate();
        let node = self.net.agent("new", 2, &compose_good(), &[]);
        wait_until("the request", T, || async { self.net.request_count().await >= 1 }).await;
        let logs = self.net.request_logs::<Op::SecretRequested>(alloy::primitives::U256::from(1)).await;
        let block = logs[0].block_number.expect("request block");
        wait_until("the request confirmed", T, || async { self.net.head().await > block + 1 }).await;
        let frozen = self.net.head().await;
        self.rpc.freeze(frozen);
        let app = replicatoor_core::protocol::app_reference_id(&compose_hash(&compose_good()));
        replicatoor::admin::revoke(&self.net.owner, app, "a vulnerable build").await.expect("revoke");
        assert!(self.net.head().await > frozen, "the revocation is mined after the frozen head");
        node
    }

    /// The holder decided on the frozen view, committed, and gave up once no trusted header showed
    /// the commitment within `reveal_within_secs` (10 s in `pin`): that, and not some other failure,
    /// is what stopped it, and no sealed delivery left it. Without the commitment rule the holder
    /// sends at once (no peers, so no jitter) and never logs the give-up, so the wait fails.
    async fn gave_up_without_a_sealed_delivery(&self, holder: &Proc) {
        wait_until("the holder's decision", T, || async { holder.log().contains("request verified") }).await;
        let gave_up = "no trusted header proved the batch's commitment within 10 s";
        // Either outcome ends the wait, so a delivery that leaves fails below with what it sent.
        wait_until("the holder giving up on its commitment, or a sealed delivery", T, || async {
            holder.log().contains(gave_up) || !self.sealed_deliveries().is_empty()
        })
        .await;
        let log = holder.log();
        let sent = self.sealed_deliveries();
        assert!(sent.is_empty(), "sealed deliveries for the revoked app left the holder: {sent:#?}\n{log}");
        assert!(log.contains("batch commitment posted") && log.contains(gave_up), "{log}");
    }

    /// The holder restarted on the frozen views, with `env` (e.g. a wall clock set back).
    fn holder(&self, pin: &str, env: &[(&str, &str)]) -> Proc {
        let args = ["--deployment", pin, "--beacon-url", self.beacon.url()];
        self.net.agent_via(self.rpc.url(), "genesis", 1, &compose_good(), &args, env)
    }
}

/// The holder decides on the frozen view seconds after the revocation (well inside `max_age_secs`,
/// its clock honest): no sealed delivery may leave it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_view_seconds_after_a_revocation_gets_no_sealed_delivery() {
    let f = Frozen::start("frozen-honest-clock").await;
    let pin = pin(&f.net, &f.beacon, 60);
    let _node = f.freeze_after_a_request_then_revoke(&pin).await;
    let holder = f.holder(&pin, &[]);
    f.gave_up_without_a_sealed_delivery(&holder).await;

    // The operator lets the views go: the holder sees the revocation and refuses for that reason.
    f.rpc.freeze(0);
    wait_until("the refusal", T, || async { f.net.status(1).await == 3 }).await;
    assert_eq!(f.net.refusal_reason(1).await, Some(Refusal::AppReferenceNotAllowed.code()));
    assert!(f.sealed_deliveries().is_empty(), "{}", holder.log());
}

/// The same frozen view, now older than `max_age_secs` by the real clock, and the holder started
/// with its wall clock a day behind (libfaketime): no sealed delivery may leave it either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_view_with_the_wall_clock_a_day_behind_gets_no_sealed_delivery() {
    assert!(std::path::Path::new(FAKETIME).exists(), "apt-get install faketime");
    let f = Frozen::start("frozen-clock-behind").await;
    let pin = pin(&f.net, &f.beacon, 5);
    let _node = f.freeze_after_a_request_then_revoke(&pin).await;
    // Real time must pass here: the frozen view has to be older than `max_age_secs` (5 s) by the
    // real clock, so that only the holder's clock set back could make it look fresh.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let clock = [("LD_PRELOAD", FAKETIME), ("FAKETIME", "-1d"), ("DONT_FAKE_MONOTONIC", "1")];
    let holder = f.holder(&pin, &clock);
    f.gave_up_without_a_sealed_delivery(&holder).await;
}
