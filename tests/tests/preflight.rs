//! `replicatoor preflight` against a real contract on anvil: a node of the approved version is
//! accepted; once the owner schedules that version's end it is accepted now and refused (12) from the
//! end (exit 6, for a deployment pipeline); an unapproved version is refused now (exit 3). Both
//! forms: references only (`--compose`), and the quote through the holders' pipeline (`--quote`).

use replicatoor_core::{
    crypto::HpkeKeypair,
    protocol::{app_reference_id, os_reference_id},
};
use replicatoor_testkit::simulated::SimulatedTd;
use replicatoor_tests::{compose_bad, compose_good, compose_hash, key, Net};
use serde_json::Value;
use std::{fs, process::Command};

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
