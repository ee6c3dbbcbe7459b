//! The binary built without dev features (a plain `cargo build --release` at the root, or
//! `cargo test -p replicatoor`) refuses every dev command and switch, with exit code 1 and the reason.
//! Under `cargo test --workspace` this package is built with the `tests` crate's `simulated` feature
//! unified in, and there is nothing to check here; script/container-test.sh checks the production
//! image's binary itself.

#[cfg(not(feature = "simulated"))]
#[test]
fn the_production_binary_refuses_dev_commands() {
    use std::process::Command;
    let why = "built without the `simulated` feature";
    // (arguments, exit code): a failed command exits 1, `config check` 2 on an error.
    let cases: [(&[&str], i32); 3] = [
        (
            &[
                "dev",
                "beacon",
                "--rpc-url",
                "http://127.0.0.1:1",
                "--contract",
                "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            ],
            1,
        ),
        (&["dev", "guest-agent", "--socket", "/nonexistent/s", "--compose", "/nonexistent/app-compose.json"], 1),
        (
            &[
                "config",
                "check",
                "--dangerously-trust-rpc",
                "--rpc-url",
                "http://127.0.0.1:1",
                "--contract",
                "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                "--state-dir",
                "/nonexistent/state",
                "--secret-file",
                "/nonexistent/secret",
                "--allow-simulated-quotes",
            ],
            2,
        ),
    ];
    // The simulated network relabelled as a custom beacon network (its committee keys are public): a
    // dev build takes it (agent/chain's unit tests check both builds), this one refuses the pin.
    let relabelled = relabelled_simulated_pin();
    let pinned = [
        "config",
        "check",
        "--rpc-url",
        "http://127.0.0.1:1",
        "--contract",
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "--state-dir",
        "/nonexistent/state",
        "--secret-file",
        "/nonexistent/secret",
        "--beacon-url",
        "http://127.0.0.1:2",
        "--deployment",
        &relabelled,
    ];
    let cases = cases.into_iter().map(|(args, code)| (args, code, why));
    let identity = "the simulated network's identity";
    for (args, code, why) in cases.chain([(&pinned[..], 2, identity)]) {
        let out = Command::new(env!("CARGO_BIN_EXE_replicatoor"))
            .args(args)
            .env("REPLICATOOR_SENDER_KEY", "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
            .output()
            .expect("run replicatoor");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(code), "{args:?}:\n{text}");
        assert!(text.contains(why), "{args:?} does not say why:\n{text}");
    }
}

/// A `mode = "beacon"` pin whose `[trust.custom_network]` is the simulated dev beacon's network under
/// another name.
#[cfg(not(feature = "simulated"))]
fn relabelled_simulated_pin() -> String {
    use replicatoor_beacon::{Network, PresetKind};
    use replicatoor_chain::deployment::{PinnedDeployment, TrustRoot};
    let mut network = Network::simulated(Network::simulated_genesis_validators_root(), 0, 1, PresetKind::Minimal);
    network.name = "mainnet".into();
    PinnedDeployment {
        chain_id: 31337,
        contract: "0x5FbDB2315678afecb367f032d93F642f64180aa3".parse().expect("address"),
        start_block: 0,
        trust: TrustRoot::Beacon {
            network: None,
            custom_network: Some(network),
            checkpoint: [1; 32].into(),
            max_age_secs: 60,
            reveal_within_secs: replicatoor_chain::deployment::DEFAULT_REVEAL_WITHIN_SECS,
        },
    }
    .to_toml()
}
