//! The comparison of the operator's settings with the measured compose's, on agent configurations as
//! the compose reader gives them (the reader's own tests cover the compose forms). Environment-blind:
//! the operator's flags are parsed with every `env` removed, as in `config/tests.rs`.

use super::*;
use crate::config::RunArgs;
use clap::{CommandFactory, FromArgMatches};
use replicatoor_compose::agent::Origin;
use replicatoor_testkit::simulated::SimulatedTd;
use sha2::{Digest, Sha256};

const PIN: &str = "chain_id = 31337\ncontract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\nstart_block = 0\n\
                   [trust]\nmode = \"quorum\"\nrpcs = [\"https://a.example\", \"https://b.example\", \
                   \"https://c.example\"]\nquorum = 2\n";
const OTHER_PIN: &str = "chain_id = 31337\ncontract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n\
                         start_block = 0\n[trust]\nmode = \"quorum\"\nrpcs = [\"https://a.evil\", \
                         \"https://b.evil\"]\nquorum = 2\n";

/// Apply the measured compose's agent settings to the operator's `args`, as [`resolve`] does.
fn apply(args: RunArgs, agent: &AgentConfig) -> Result<Settings, Vec<ConfigError>> {
    let config_file = args.config.clone();
    let (operator, given) = args.layered_with_sources().map_err(|e| vec![e])?;
    apply_to(operator, &given, config_file, agent)
}

fn without_env(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|a| a.env(None::<&str>)).mut_subcommands(without_env)
}

/// `replicatoor run <extra>`, environment ignored.
fn operator(extra: &[&str]) -> RunArgs {
    let args: Vec<&str> = ["replicatoor", "run"].iter().chain(extra).copied().collect();
    let m = without_env(crate::cli::Cli::command()).try_get_matches_from(args).unwrap();
    match crate::cli::Cli::from_arg_matches(&m).unwrap().command {
        crate::cli::Command::Run(a) => a,
        _ => unreachable!("parsed `run`"),
    }
}

fn literal(setting: &'static str, value: &str) -> Origin {
    let place = format!("environment {}", table::by_key(setting).unwrap().env);
    Origin { setting, place, value: Value::Literal { value: value.into() } }
}

/// The example compose's agent: pin, contract, start block, confirmations, paths literal; RPC, sender
/// and beacon URLs and the genesis switch the operator's.
fn measured() -> AgentConfig {
    let op = |setting: &'static str| Origin {
        setting,
        place: format!("environment {}", table::by_key(setting).unwrap().env),
        value: Value::Operator { source: "substituted from the operator's environment".into() },
    };
    AgentConfig {
        service: "replicatoor".into(),
        settings: vec![
            op("rpc_url"),
            op("beacon_url"),
            op("sender_key"),
            op("genesis"),
            literal("deployment", PIN),
            literal("contract", "0x5FbDB2315678afecb367f032d93F642f64180aa3"),
            literal("start_block", "123"),
            literal("state_dir", "/var/lib/replicatoor"),
            literal("secret_file", "/secret/app.key"),
            literal("quote_provider", "dstack"),
            literal("confirmations", "3"),
            literal("allow_insecure_rpc", "false"),
        ],
        outside: vec![],
    }
}

fn keys(r: Result<Settings, Vec<ConfigError>>) -> Vec<&'static str> {
    r.expect_err("must be refused").iter().map(ConfigError::key).collect()
}

#[test]
fn the_measured_values_fill_in_what_the_operator_did_not_give() {
    let s = apply(operator(&["--rpc-url", "https://rpc.example", "--genesis"]), &measured()).unwrap();
    assert_eq!(s.deployment.as_deref(), Some(PIN));
    assert_eq!((s.start_block, s.confirmations), (123, 3));
    assert_eq!(s.contract.as_deref(), Some("0x5FbDB2315678afecb367f032d93F642f64180aa3"));
    assert_eq!(s.state_dir.as_deref(), Some(std::path::Path::new("/var/lib/replicatoor")));
    // Transport and role settings stay the operator's.
    assert_eq!(s.rpc_url.as_deref(), Some("https://rpc.example"));
    assert!(s.genesis);
}

#[test]
fn the_operator_may_repeat_the_measured_values() {
    let s = apply(operator(&["--deployment", PIN, "--confirmations=3", "--start-block", "123"]), &measured());
    assert_eq!(s.unwrap().confirmations, 3);
}

#[test]
fn an_operator_value_that_differs_from_the_measured_literal_is_refused_by_name() {
    assert_eq!(keys(apply(operator(&["--deployment", OTHER_PIN]), &measured())), ["deployment"]);
    assert_eq!(keys(apply(operator(&[&format!("--deployment={OTHER_PIN}")]), &measured())), ["deployment"]);
    assert_eq!(keys(apply(operator(&["--confirmations", "0"]), &measured())), ["confirmations"]);
    let err = apply(operator(&["--contract", "0x1111111111111111111111111111111111111111"]), &measured());
    let text = err.unwrap_err()[0].to_string();
    assert!(text.contains("contract") && text.contains("0x1111") && text.contains("environment"), "{text}");
}

#[test]
fn a_security_setting_the_compose_does_not_set_stays_at_its_default() {
    // The compose leaves these at their defaults; an operator's value is refused, whatever it is.
    assert_eq!(keys(apply(operator(&["--dangerously-trust-rpc"]), &measured())), ["dangerously_trust_rpc"]);
    assert_eq!(keys(apply(operator(&["--jitter-ms", "1"]), &measured())), ["jitter_ms"]);
    assert_eq!(keys(apply(operator(&["--allow-insecure-rpc"]), &measured())), ["allow_insecure_rpc"]);
    let text = apply(operator(&["--dangerously-trust-rpc"]), &measured()).unwrap_err()[0].to_string();
    assert!(text.contains("leaves it at its default false"), "{text}");
}

#[test]
fn a_config_file_is_an_operator_source_like_any_other() {
    let dir = std::env::temp_dir().join(format!("replicatoor-measured-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("node.toml");
    std::fs::write(&file, "confirmations = 0\n").unwrap();
    let path = file.to_str().unwrap();
    // Naming a file the compose does not name, and a security value in it: both refused, by name.
    let mut k = keys(apply(operator(&["--config", path]), &measured()));
    k.sort_unstable();
    assert_eq!(k, ["config", "confirmations"]);
    // A file the compose names, carrying only transport settings, is accepted.
    std::fs::write(&file, "rpc_url = \"https://rpc.example\"\n").unwrap();
    let mut named = measured();
    named.settings.push(literal("config", path));
    assert_eq!(
        apply(operator(&[&format!("--config={path}")]), &named).unwrap().rpc_url.as_deref(),
        Some("https://rpc.example")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn security_settings_the_compose_leaves_to_the_operator_are_refused() {
    let mut m = measured();
    m.settings.push(Origin {
        setting: "dangerously_trust_rpc",
        place: "environment REPLICATOOR_DANGEROUSLY_TRUST_RPC".into(),
        value: Value::Operator { source: "\"${TRUST}\" substituted from the operator's environment".into() },
    });
    let err = apply(operator(&[]), &m).unwrap_err();
    assert_eq!(err.iter().map(ConfigError::key).collect::<Vec<_>>(), ["dangerously_trust_rpc"]);
    assert!(err[0].to_string().contains("${TRUST}"), "{}", err[0]);
    // So is a compose through which the operator reaches settings no single name covers.
    let mut m = measured();
    m.outside.push("command argument \"${X}\" is substituted from the operator's environment".into());
    assert_eq!(keys(apply(operator(&[]), &m)), [COMPOSE]);
}

#[test]
fn a_switch_literal_must_be_true_or_false() {
    let mut m = measured();
    m.settings.push(literal("allow_simulated_quotes", "yes"));
    assert_eq!(keys(apply(operator(&[]), &m)), ["allow_simulated_quotes"]);
    let mut m = measured();
    m.settings.push(literal("dangerously_trust_rpc", "true"));
    assert!(apply(operator(&[]), &m).unwrap().dangerously_trust_rpc, "a measured switch applies");
}

/// The node's settings and the shared table cannot drift apart: every `run` setting has a row with the
/// same flag, environment variable and kind, and every row but the global ones is a `run` setting.
#[test]
fn every_run_setting_is_in_the_shared_table() {
    let cmd = RunArgs::augment_args(clap::Command::new("run"));
    let mut seen = Vec::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        let row = table::by_key(id).unwrap_or_else(|| panic!("`{id}` has no class in replicatoor_compose::settings"));
        assert_eq!(arg.get_long(), Some(row.flag), "{id}: flag");
        assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(row.env), "{id}: environment variable");
        assert_eq!(!arg.get_action().takes_values(), row.switch, "{id}: switch or value");
        seen.push(id.to_string());
    }
    for row in table::SETTINGS {
        assert!(
            seen.iter().any(|s| s == row.key) || ["log", "log_format"].contains(&row.key),
            "{} is not a setting",
            row.key
        );
    }
}

fn attestation_for(compose: &str) -> Attestation {
    let td = SimulatedTd::new(Sha256::digest(compose.as_bytes()).into());
    let (quote, event_log) = td.attest([7; 64]).unwrap();
    Attestation { quote, event_log }
}

#[test]
fn own_compose_is_taken_only_when_the_quote_measured_exactly_its_bytes() {
    let compose = r#"{"docker_compose_file":"services: {}"}"#;
    let att = attestation_for(compose);
    assert_eq!(check_own_compose(compose, &att).unwrap(), <[u8; 32]>::from(Sha256::digest(compose.as_bytes())));
    // Another document (one byte more, or re-serialized) is not what this CVM measured.
    for other in [format!("{compose} "), compose.replace(':', ": ")] {
        let e = check_own_compose(&other, &att).unwrap_err().to_string();
        assert!(e.contains("this CVM measured compose hash"), "{e}");
    }
    // A log that does not replay to the quote's RTMR3 is not this CVM's log.
    let mut forged = att.clone();
    forged.event_log = attestation_for("another compose").event_log;
    let e = check_own_compose(compose, &forged).unwrap_err().to_string();
    assert!(e.contains("does not replay to RTMR3"), "{e}");
}

/// Reading the guest agent's JSON event log is transport (TRUST.md section 4): whatever the reader
/// makes of it, `check_own_compose` replays its compact form with the kernel (every digest recomputed)
/// against the quote's RTMR3. On the recorded Dstack answer the genuine log replays (the check then
/// fails only on the document, which the fixture does not record); every change to the log that the
/// reader still accepts, as a reader bug might make, is refused by the replay.
#[test]
fn a_tampered_json_event_log_is_refused_by_the_replay() {
    use replicatoor_testkit::dstack;
    use serde_json::{json, Value};
    let check = |events: &[Value]| {
        let log = crate::provider::compact_event_log(&Value::from(events.to_vec()).to_string())
            .expect("the reader accepts it");
        let att = Attestation { quote: dstack::quote(), event_log: log };
        check_own_compose("a document", &att).unwrap_err().to_string()
    };
    let genuine: Vec<Value> = serde_json::from_str(&dstack::event_log()).unwrap();
    let e = check(&genuine);
    assert!(e.contains("this CVM measured compose hash"), "the genuine log replays: {e}");
    let at = |events: &[Value], name: &str| events.iter().position(|e| e["event"] == name).unwrap();
    // Each changes the events, given the compose-hash event's position.
    type Tamper = fn(&mut Vec<Value>, usize);
    let tamperings: [(&str, Tamper); 8] = [
        ("another compose hash", |ev, c| ev[c]["event_payload"] = "00".repeat(32).into()),
        ("the compose-hash event dropped", |ev, c| drop(ev.remove(c))),
        ("the compose-hash event logged against IMR 2", |ev, c| {
            ev[c] = json!({"imr": 2, "event_type": 1, "digest": "00".repeat(48), "event": "compose-hash",
                           "event_payload": ev[c]["event_payload"]})
        }),
        ("two runtime events swapped", |ev, c| ev.swap(c, c + 1)),
        ("a runtime event added", |ev, c| {
            let mut again = ev[c].clone();
            again["event_payload"] = "00".repeat(32).into();
            ev.push(again)
        }),
        ("a runtime event renamed", |ev, c| ev[c]["event"] = "compose-hash2".into()),
        ("the runtime events read as digest format V2", |ev, _| {
            ev.iter_mut().filter(|e| e["imr"] == 3).for_each(|e| e["version"] = 2.into())
        }),
        ("a boot event read as a runtime event", |ev, _| {
            let boot = ev.iter().position(|e| e["event"] == "acpi-loader").unwrap();
            ev[boot]["imr"] = 3.into();
            ev[boot]["event_type"] = DSTACK_RUNTIME.into();
            ev[boot]["digest"] = "".into();
        }),
    ];
    for (what, tamper) in tamperings {
        let mut events = genuine.clone();
        tamper(&mut events, at(&genuine, "compose-hash"));
        let e = check(&events);
        assert!(e.contains("does not replay to RTMR3"), "{what}: {e}");
    }
}
const DSTACK_RUNTIME: u32 = replicatoor_core::attest::eventlog::DSTACK_RUNTIME_EVENT_TYPE;
