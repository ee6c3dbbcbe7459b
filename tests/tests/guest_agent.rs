//! `replicatoor dev guest-agent`: the simulated Dstack guest agent, as the `dstack` quote provider and a
//! raw HTTP client see it over its unix socket. Its answers have the recorded Dstack response's shape,
//! and its quotes verify (as simulated) with an event log that replays to RTMR3 and names the compose.

use replicatoor::provider;
use replicatoor_core::attest::{collateral::NoCollateral, eventlog::EventLog, Verifier};
use replicatoor_testkit::simulated;
use replicatoor_tests::{compose_good, compose_hash, root, Scratch};
use std::{
    io::{Read, Write},
    os::unix::{fs::PermissionsExt, net::UnixStream},
    path::{Path, PathBuf},
    process::Child,
    time::{SystemTime, UNIX_EPOCH},
};

struct GuestAgent {
    child: Child,
    socket: PathBuf,
}

impl GuestAgent {
    fn start(scratch: &Scratch, compose: &Path) -> GuestAgent {
        let socket = scratch.0.join("dstack.sock");
        GuestAgent { child: replicatoor_tests::start_guest_agent(&socket, compose), socket }
    }

    /// One raw HTTP/1.0 exchange: (status, body).
    fn raw(&self, method: &str, target: &str, body: &str) -> (u16, String) {
        let mut s = UnixStream::connect(&self.socket).unwrap();
        write!(s, "{method} {target} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP response");
        (head.split_whitespace().nth(1).unwrap().parse().unwrap(), body.to_string())
    }
}

impl Drop for GuestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn the_dstack_provider_gets_verifiable_simulated_quotes_naming_the_compose() {
    let scratch = Scratch::new("guest-agent");
    let agent = GuestAgent::start(&scratch, &compose_good());
    let mode = std::fs::metadata(&agent.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o666, "containers running as uid 10001 can connect");

    let report_data = [0x5a; 64];
    let att = provider::dstack_get_quote(&agent.socket, &report_data).await.expect("a quote");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let v = Verifier::new(Box::new(NoCollateral)).dangerously_trust_simulated_quotes(simulated::anchor());
    let q = v.verify(&att.quote, now, 0).expect("a valid simulated quote");
    assert!(q.is_simulated());
    assert_eq!(q.measurements().report_data, report_data);
    let log = EventLog::from_compact(&att.event_log).unwrap();
    log.replay_rtmr3_and_check(&q.measurements().rtmr[3]).expect("the event log replays to RTMR3");
    assert_eq!(log.app_info().unwrap().compose_hash, compose_hash(&compose_good()), "names the compose");
    // Another compose, another compose hash (and another app reference).
    drop(agent);
    let other = root().join("examples/app-compose-unapproved.json");
    let agent = GuestAgent::start(&scratch, &other);
    let att = provider::dstack_get_quote(&agent.socket, &report_data).await.expect("a quote");
    let log = EventLog::from_compact(&att.event_log).unwrap();
    assert_eq!(log.app_info().unwrap().compose_hash, compose_hash(&other));
}

#[test]
fn answers_have_the_recorded_dstack_shape_and_bad_requests_are_refused() {
    let scratch = Scratch::new("guest-agent-shape");
    let agent = GuestAgent::start(&scratch, &compose_good());
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root().join("tests/fixtures/dstack/tdx-lite-getquote.json")).unwrap())
            .unwrap();

    // Short report data is zero-padded to 64 bytes, as Dstack does.
    let (status, body) = agent.raw("POST", "/GetQuote", r#"{"report_data":"0102"}"#);
    assert_eq!(status, 200, "{body}");
    let ours: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(keys(&ours), keys(&recorded), "GetQuote fields");
    assert_eq!(ours["report_data"], format!("0102{}", "00".repeat(62)));
    let events = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        serde_json::from_str(v["event_log"].as_str().expect("event_log is a JSON string")).unwrap()
    };
    let recorded_event = &events(&recorded)[0];
    let our_events = events(&ours);
    assert!(our_events.iter().all(|e| keys(e) == keys(recorded_event)), "event fields: {our_events:?}");
    let names: Vec<&str> = our_events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    for n in ["app-id", "compose-hash", "instance-id", "system-ready"] {
        assert!(names.contains(&n), "{n} not logged: {names:?}");
    }
    serde_json::from_str::<serde_json::Value>(ours["vm_config"].as_str().unwrap()).expect("vm_config is JSON text");

    let (status, body) = agent.raw("GET", "/Info", "");
    assert_eq!(status, 200, "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["compose_hash"], hex::encode(compose_hash(&compose_good())));

    for (target, body, status, why) in [
        ("/GetQuote", format!(r#"{{"report_data":"{}"}}"#, "00".repeat(65)), 400, "at most 64"),
        ("/GetQuote", r#"{"report_data":"zz"}"#.to_string(), 400, "report_data"),
        ("/GetQuote", "not json".to_string(), 400, "GetQuote body"),
        ("/prpc/Tappd.TdxQuote?json", "{}".to_string(), 404, "/GetQuote and /Info"),
    ] {
        let (got, text) = agent.raw("POST", target, &body);
        assert_eq!((got, text.contains(why)), (status, true), "{target} {body}: {text}");
    }
}
