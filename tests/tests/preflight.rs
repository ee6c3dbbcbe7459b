//! `replicatoor preflight` against a real contract on anvil: a node of the approved version is
//! accepted; once the owner schedules that version's end it is accepted now and refused (12) from the
//! end (exit 6, for a deployment pipeline); an unapproved version is refused now (exit 3). Both
//! forms: references only (`--compose`), and the quote through the holders' pipeline (`--quote`).
//!
//! Then with a widening delay, against a real holder process: a pending policy widening (refused
//! now, accepted from its time: exit 7) and a scheduled end (accepted now, refused from it: exit 6),
//! each answer checked against what the holder then does with the same quote, before and after the
//! chain's clock passes the change.

use alloy::primitives::B256;
use replicatoor_chain::Chain;
use replicatoor_core::{
    crypto::HpkeKeypair,
    protocol::{app_reference_id, os_reference_id, Policy},
    refusal::Refusal,
};
use replicatoor_testkit::{sim_pki::SimTcb, simulated::SimulatedTd};
use replicatoor_tests::{compose_bad, compose_good, compose_hash, key, wait_until, Net};
use serde_json::Value;
use std::{fs, path::PathBuf, process::Command, time::Duration};

fn preflight(net: &Net, args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_replicatoor-dev"))
        .args(["preflight", "--json", "--rpc-url", &net.url, "--contract", &net.contract.to_string()])
        .args(args)
        .output()
        .expect("run preflight");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let json =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), json)
}

/// The human form, for a person reading a pipeline's log.
fn preflight_text(net: &Net, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_replicatoor-dev"))
        .args(["preflight", "--rpc-url", &net.url, "--contract", &net.contract.to_string()])
        .args(args)
        .output()
        .expect("run preflight");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).to_string())
}

fn answers(v: &Value) -> Vec<(String, Option<u64>)> {
    v["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["answer"].as_str().unwrap().to_string(), a["code"].as_u64()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_answers_now_and_after_each_scheduled_change() {
    let net = Net::start("preflight", Net::dev_policy()).await;
    drop(net.genesis(1).await);
    let td = SimulatedTd::new(compose_hash(&compose_good()));
    let os = os_reference_id(&td.mr_td, &td.rtmr0, &td.rtmr1, &td.rtmr2).to_string();
    let good = compose_good().display().to_string();
    let refs_only = ["--compose", good.as_str(), "--os-ref", os.as_str()];

    let (code, v) = preflight(&net, &refs_only);
    assert_eq!((code, answers(&v)), (0, vec![("accepted".into(), None)]), "{v}");
    let bad = compose_bad().display().to_string();
    let (code, v) = preflight(&net, &["--compose", &bad, "--os-ref", &os]);
    assert_eq!((code, answers(&v)), (3, vec![("app_reference_not_allowed".into(), Some(12))]), "{v}");

    // The node's own quote and log, bound to its account and key, through the holders' pipeline.
    let (requester, hpke) = (key(5).address(), HpkeKeypair::generate());
    let (quote, log) = td.attest(net.owner.deployment().request_report_data(requester, &hpke.public())).unwrap();
    let dir = std::env::temp_dir().join(format!("replicatoor-preflight-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let (qf, lf) = (dir.join("quote.bin"), dir.join("log.bin"));
    fs::write(&qf, &quote).unwrap();
    fs::write(&lf, &log).unwrap();
    let (qs, ls, rs, ks) =
        (qf.display().to_string(), lf.display().to_string(), requester.to_string(), hex::encode(hpke.public()));
    let with_quote = [
        "--quote",
        qs.as_str(),
        "--event-log",
        ls.as_str(),
        "--requester",
        rs.as_str(),
        "--pubkey",
        ks.as_str(),
        "--allow-simulated-quotes",
    ];
    let (code, v) = preflight(&net, &with_quote);
    assert_eq!((code, answers(&v)), (0, vec![("accepted".into(), None)]), "{v}");
    // Another account's request: the quote does not bind it.
    let other = key(6).address().to_string();
    let mut wrong = with_quote;
    wrong[5] = other.as_str();
    let (code, v) = preflight(&net, &wrong);
    assert_eq!(code, 3, "{v}");
    assert_eq!(answers(&v)[0].1, Some(7), "report_data mismatch: {v}");

    // The owner schedules the version's end: accepted now, refused from then on.
    let app = app_reference_id(&compose_hash(&compose_good()));
    let now = net.owner.block(net.head().await).await.unwrap().timestamp;
    replicatoor::admin::schedule_expiry(&net.owner, app, now + 3_600, "v2 is out").await.unwrap();
    for args in [&refs_only[..], &with_quote[..]] {
        let (code, v) = preflight(&net, args);
        assert_eq!(code, 6, "accepted now, refused after a scheduled change: {v}");
        let a = answers(&v);
        assert_eq!(a, vec![("accepted".into(), None), ("app_reference_not_allowed".into(), Some(12))], "{v}");
        assert_eq!(v["answers"][1]["at"], now + 3_600);
        assert_eq!(v["answers"][1]["when"], "the app reference ends");
    }
    let _ = fs::remove_dir_all(&dir);
}

/// A new node's request as a file pair for `--quote`, and the call that posts it.
struct Node {
    quote: Vec<u8>,
    log: Vec<u8>,
    hpke: HpkeKeypair,
    files: [String; 2],
}

impl Node {
    fn new(net: &Net, td: &SimulatedTd, requester: alloy::primitives::Address, dir: &std::path::Path, n: u32) -> Node {
        let hpke = HpkeKeypair::generate();
        let (quote, log) = td.attest(net.owner.deployment().request_report_data(requester, &hpke.public())).unwrap();
        let (qf, lf): (PathBuf, PathBuf) = (dir.join(format!("quote-{n}.bin")), dir.join(format!("log-{n}.bin")));
        fs::write(&qf, &quote).unwrap();
        fs::write(&lf, &log).unwrap();
        Node { quote, log, hpke, files: [qf.display().to_string(), lf.display().to_string()] }
    }

    fn args<'a>(&'a self, requester: &'a str, key: &'a str) -> [&'a str; 9] {
        let [q, l] = &self.files;
        ["--quote", q, "--event-log", l, "--requester", requester, "--pubkey", key, "--allow-simulated-quotes"]
    }

    fn preflight(&self, net: &Net, requester: &str) -> (i32, Value) {
        let key = hex::encode(self.hpke.public());
        preflight(net, &self.args(requester, &key))
    }

    fn preflight_text(&self, net: &Net, requester: &str) -> (i32, String) {
        let key = hex::encode(self.hpke.public());
        preflight_text(net, &self.args(requester, &key))
    }

    /// Post the request and wait for the holders' answer: `None` delivered, `Some(code)` refused.
    async fn request(&self, net: &Net, from: &Chain) -> Option<u8> {
        let call = from.contract().requestSecret(
            B256::from(self.hpke.public()),
            self.quote.clone().into(),
            self.log.clone().into(),
        );
        from.send(call).await.expect("requestSecret");
        let id = net.request_count().await;
        wait_until("the holders' answer", Duration::from_secs(60), || async { net.status(id).await >= 2 }).await;
        match net.status(id).await {
            2 => None,
            _ => Some(net.refusal_reason(id).await.expect("a refusal reason")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_predicts_what_holders_do_after_a_pending_widening_and_a_scheduled_end() {
    const DELAY: u64 = 3_600;
    let net = Net::start_delayed("preflight-pending", Net::dev_policy(), DELAY).await;
    let holder = net.genesis(1).await;
    let requester = key(5);
    let from = Chain::connect(&net.url, net.contract, Some(requester.clone())).await.unwrap();
    let who = requester.address().to_string();
    let dir = net.scratch.0.join("nodes");
    fs::create_dir_all(&dir).unwrap();
    // A node on an out-of-date platform: the policy in force (UpToDate only) refuses it.
    let mut td = SimulatedTd::new(compose_hash(&compose_good()));
    td.tcb = SimTcb::OutOfDate;
    let (first, second) =
        (Node::new(&net, &td, requester.address(), &dir, 1), Node::new(&net, &td, requester.address(), &dir, 2));
    let (code, v) = first.preflight(&net, &who);
    assert_eq!((code, answers(&v)), (3, vec![("tcb_status_not_accepted".into(), Some(4))]), "{v}");

    // The owner widens the policy to out-of-date platforms: timelocked by the delay.
    let wider = Policy { tcb_statuses: 1 | 1 << 4, ..Net::dev_policy() };
    replicatoor::admin::set_policy(&net.owner, wider, "accept OutOfDate").await.unwrap();
    let at = net.owner.contract().pendingPolicy().call().await.unwrap().activatesAt;
    assert!(at > net.now().await);
    for node in [&first, &second] {
        let (code, v) = node.preflight(&net, &who);
        assert_eq!(code, 7, "refused now, accepted after a scheduled change: {v}");
        let a = answers(&v);
        assert_eq!(a, vec![("tcb_status_not_accepted".into(), Some(4)), ("accepted".into(), None)], "{v}");
        assert_eq!((v["answers"][1]["at"].as_u64(), v["accepted_from"].as_u64()), (Some(at), Some(at)), "{v}");
        assert_eq!(v["answers"][1]["when"], "the pending policy takes effect");
        assert_eq!((v["verdict"].as_str(), v["exit_code"].as_u64()), (Some("accepted_later"), Some(7)));
        // The collateral (simulated, made for now) gives OutOfDate, and holds past now.
        assert_eq!(v["collateral"]["tcb"]["status"], "OutOfDate", "{v}");
        assert!(v["collateral"]["valid_until"].as_u64().unwrap() > net.now().await, "{v}");
    }
    let (code, text) = first.preflight_text(&net, &who);
    assert_eq!(code, 7, "{text}");
    let when = replicatoor_core::attest::collateral::format_rfc3339_utc(at);
    assert!(text.contains(&format!("verdict: refused now (code 4), accepted from {at} = {when}")), "{text}");
    assert!(text.contains("TCB status OutOfDate"), "{text}");
    // Before the change the holder refuses it, with the code preflight named.
    assert_eq!(first.request(&net, &from).await, Some(Refusal::TcbStatusNotAccepted.code()));
    assert!(net.now().await < at, "the refusal came before the widening");

    // Past the delay the wider policy is in force: preflight says accepted, and the holder serves it.
    net.advance(DELAY).await;
    let (code, v) = second.preflight(&net, &who);
    assert_eq!((code, answers(&v)), (0, vec![("accepted".into(), None)]), "{v}");
    assert_eq!(second.request(&net, &from).await, None, "delivered");

    // A scheduled end of the version (a narrowing in the future): accepted now, refused (12) from it.
    let app = app_reference_id(&compose_hash(&compose_good()));
    let end = net.now().await + 600;
    replicatoor::admin::schedule_expiry(&net.owner, app, end, "v2 is out").await.unwrap();
    let (third, fourth) =
        (Node::new(&net, &td, requester.address(), &dir, 3), Node::new(&net, &td, requester.address(), &dir, 4));
    for node in [&third, &fourth] {
        let (code, v) = node.preflight(&net, &who);
        assert_eq!(code, 6, "accepted now, refused after a scheduled change: {v}");
        assert_eq!(answers(&v), vec![("accepted".into(), None), ("app_reference_not_allowed".into(), Some(12))], "{v}");
        assert_eq!(v["refused_from"].as_u64(), Some(end), "{v}");
    }
    assert_eq!(third.request(&net, &from).await, None, "served before the end");
    assert!(net.now().await < end, "the delivery came before the end");
    net.advance(600).await;
    let (code, v) = fourth.preflight(&net, &who);
    assert_eq!((code, answers(&v)), (3, vec![("app_reference_not_allowed".into(), Some(12))]), "{v}");
    assert_eq!(fourth.request(&net, &from).await, Some(Refusal::AppReferenceNotAllowed.code()));
    drop(holder);
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/dcap-qvl-samples").join(name)
}

/// A genuine Intel quote on a chain whose clock is inside its collateral's window: preflight reads
/// the collateral from the directory holders would use and says until when it and the TCB status
/// hold. What needs no collateral decides with or without it, at any time: this quote binds none of our
/// requests, refused 7 (protocol v5's order, PROTOCOL.md §5.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_tells_until_when_genuine_collateral_and_tcb_status_hold() {
    let t = |s: &str| replicatoor_core::attest::collateral::parse_rfc3339_utc(s).unwrap();
    let net = Net::start_at("preflight-genuine", Net::dev_policy(), t("2025-07-01T00:00:00Z")).await;
    let dir = net.scratch.0.join("collateral");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(fixture("tdx_quote_collateral.json"), dir.join("b0c06f000000.json")).unwrap();
    // The sample quote binds none of our requests; any event log that names the approved app will do.
    let td = SimulatedTd::new(compose_hash(&compose_good()));
    let log = net.scratch.0.join("log.bin");
    fs::write(&log, replicatoor_encode::eventlog::to_compact(&td.event_log()).unwrap()).unwrap();
    let (quote, log, who, dir) = (
        fixture("tdx_quote").display().to_string(),
        log.display().to_string(),
        key(5).address().to_string(),
        dir.display().to_string(),
    );
    let pubkey = hex::encode(HpkeKeypair::generate().public());
    let base = ["--quote", &quote, "--event-log", &log, "--requester", &who, "--pubkey", &pubkey];
    let (code, v) = preflight(&net, &base);
    // Since protocol v5 the checks that need no collateral come first (PROTOCOL.md §5.1): a quote that binds
    // another request is refused 7 without its collateral, which is reported as unavailable.
    assert_eq!((code, answers(&v)[0].clone()), (3, ("report_data_mismatch".into(), Some(7))), "no collateral: {v}");
    assert!(v["collateral"]["error"].as_str().unwrap().contains("collateral unavailable"), "{v}");

    // A change scheduled past the PCK CRL's nextUpdate.
    let app = app_reference_id(&compose_hash(&compose_good()));
    replicatoor::admin::schedule_expiry(&net.owner, app, t("2025-07-25T00:00:00Z"), "later").await.unwrap();
    let with_dir: Vec<&str> = base.iter().copied().chain(["--collateral-dir", &dir]).collect();
    let (code, v) = preflight(&net, &with_dir);
    let a = answers(&v);
    // Refused for what it binds, now and at the scheduled change past the collateral's horizon: that check
    // needs no collateral, so it decides at any time (a quote that passed it would be "unknown" there).
    assert_eq!(a[0], ("report_data_mismatch".into(), Some(7)), "{v}");
    assert_eq!(a[1], ("report_data_mismatch".into(), Some(7)), "past the collateral's horizon: {v}");
    assert_eq!(code, 3, "{v}");
    let c = &v["collateral"];
    assert_eq!(
        (c["valid_until"].as_u64(), c["earliest"].as_str()),
        (Some(t("2025-07-19T10:00:35Z")), Some("PCK CRL nextUpdate")),
        "{v}"
    );
    assert_eq!(c["expiries"].as_array().unwrap().len(), 8, "{v}");
    assert_eq!(c["tcb"]["status"], "UpToDate");
    assert_eq!(c["tcb"]["tcb_date"].as_u64(), Some(t("2024-03-13T00:00:00Z")));
    assert_eq!(c["tcb"]["evaluation_data_number"].as_u64(), Some(17));
    assert_eq!(c["tcb"]["next_update"].as_u64(), Some(t("2025-07-19T10:16:03Z")));
}
