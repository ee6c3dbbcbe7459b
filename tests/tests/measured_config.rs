//! Self-measured configuration, with real processes: a simulated Dstack guest agent serves an app compose
//! (its quotes' event logs name that compose's hash, and `Info` hands the document out), and the agent's
//! `config check` and `run` take their security settings from it. An operator's flag, environment value
//! or config file that departs from the measured compose makes both exit 2 naming the setting; a compose
//! that leaves a security setting to the operator is refused the same way; transport stays the operator's.
//! (`run` checks its configuration before it touches the chain, so no chain is needed for a refusal.)

use replicatoor_tests::Scratch;
use std::{
    path::{Path, PathBuf},
    process::{Child, Command},
};

const CONTRACT: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

/// A pin valid in every build (an RPC quorum: no beacon URL needed).
fn pin(hosts: [&str; 3]) -> String {
    format!(
        "chain_id = 31337\ncontract = \"{CONTRACT}\"\nstart_block = 7\n[trust]\nmode = \"quorum\"\nrpcs = \
         [\"https://{}\", \"https://{}\", \"https://{}\"]\nquorum = 2\n",
        hosts[0], hosts[1], hosts[2]
    )
}

/// The agent's service as the shipped example writes it: security settings literal, transport from the
/// operator's environment. `extra` goes under the service (more environment lines, or other keys).
fn agent_yaml(socket: &Path, state: &Path, extra_env: &str, extra: &str) -> String {
    let pin: String = pin(["a.example", "b.example", "c.example"]).lines().map(|l| format!("        {l}\n")).collect();
    format!(
        "x-extra: &extra\n  REPLICATOOR_DANGEROUSLY_TRUST_RPC: ${{TRUST}}\nservices:\n  replicatoor:\n    image: \
         reg/replicatoor@sha256:{zero}\n{extra}    environment:\n      REPLICATOOR_CONTRACT: \"{CONTRACT}\"\n      \
         REPLICATOOR_START_BLOCK: \"7\"\n      REPLICATOOR_DEPLOYMENT: |\n{pin}      REPLICATOOR_CONFIRMATIONS: \"2\"\n      \
         REPLICATOOR_QUOTE_PROVIDER: dstack\n      REPLICATOOR_DSTACK_SOCKET: {socket}\n      REPLICATOOR_STATE_DIR: \
         {state}/state\n      REPLICATOOR_SECRET_FILE: {state}/secret/app.key\n      REPLICATOOR_RPC_URL: \
         ${{REPLICATOOR_RPC_URL}}\n      REPLICATOOR_SENDER_KEY: ${{REPLICATOOR_SENDER_KEY}}\n      \
         REPLICATOOR_BEACON_URL: ${{URL}}\n{extra_env}  app:\n    image: example/app@sha256:{zero}\n",
        zero = "0".repeat(64),
        socket = socket.display(),
        state = state.display(),
    )
}

struct Cvm {
    child: Child,
    socket: PathBuf,
    dir: PathBuf,
}

impl Cvm {
    /// A simulated CVM running `yaml` (wrapped into an app-compose.json).
    fn start(scratch: &Scratch, name: &str, yaml: impl FnOnce(&Path, &Path) -> String) -> Cvm {
        let dir = scratch.0.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("dstack.sock");
        let doc = serde_json::json!({
            "manifest_version": 2,
            "name": "measured-config-test",
            "runner": "docker-compose",
            "docker_compose_file": yaml(&socket, &dir),
            "allowed_envs": ["REPLICATOOR_RPC_URL", "REPLICATOOR_SENDER_KEY", "URL"],
        });
        let compose = dir.join("app-compose.json");
        std::fs::write(&compose, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        let child = replicatoor_tests::start_guest_agent(&socket, &compose);
        Cvm { child, socket, dir }
    }

    /// `replicatoor-dev <cmd> --dstack-socket S <args>` with the operator's environment `env` (and no other
    /// REPLICATOOR_* variable): (exit code, stdout + stderr).
    fn agent(&self, cmd: &[&str], args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
        let mut c = Command::new(env!("CARGO_BIN_EXE_replicatoor-dev"));
        c.args(cmd).arg("--dstack-socket").arg(&self.socket).args(args).current_dir(&self.dir);
        for (k, _) in std::env::vars() {
            if k.starts_with("REPLICATOOR_") {
                c.env_remove(k);
            }
        }
        c.env("REPLICATOOR_SENDER_KEY", KEY).env("REPLICATOOR_RPC_URL", "https://rpc.example");
        let out = c.envs(env.iter().copied()).output().expect("run the agent");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    fn config_check(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
        self.agent(&["config", "check"], args, env)
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
        self.agent(&["run"], args, env)
    }
}

impl Drop for Cvm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn plain(s: &Path, d: &Path) -> String {
    agent_yaml(s, d, "", "")
}

#[test]
fn a_node_takes_its_security_settings_from_its_measured_compose() {
    let scratch = Scratch::new("measured-ok");
    let cvm = Cvm::start(&scratch, "cvm", plain);
    // Only transport from the operator (RPC, sender key, and a beacon URL argument): clean.
    let (code, out) = cvm.config_check(&["--beacon-url", "https://beacon.example"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("configuration: self-measured (service `replicatoor` of compose"), "{out}");
    assert!(out.contains("chain view:    pinned: RPC quorum (2 of 3)"), "the pin comes from the compose:\n{out}");
    assert!(out.contains("start block:   7") && out.contains(&format!("contract:      {CONTRACT}")), "{out}");
    // The operator may repeat a measured value, in any form.
    let (code, out) = cvm.config_check(&["--confirmations=2"], &[("REPLICATOOR_START_BLOCK", "7")]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn an_operator_value_that_differs_from_the_measured_literal_exits_2_naming_it() {
    let scratch = Scratch::new("measured-departs");
    let cvm = Cvm::start(&scratch, "cvm", plain);
    let other = pin(["a.evil", "b.evil", "c.evil"]);
    let file = cvm.dir.join("operator.toml");
    std::fs::write(&file, "confirmations = 0\n").unwrap();
    // (operator's arguments, operator's environment, the setting the refusal must name)
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec![format!("--deployment={other}")], vec![], "deployment"),
        (vec!["--deployment".into(), other.clone()], vec![], "deployment"),
        (vec![], vec![("REPLICATOOR_DEPLOYMENT", other.as_str())], "deployment"),
        (vec![], vec![("REPLICATOOR_CONFIRMATIONS", "0")], "confirmations"),
        (vec![format!("--config={}", file.display())], vec![], "config"),
        (vec!["--dangerously-trust-rpc".into()], vec![], "dangerously_trust_rpc"),
        (vec!["--start-block".into(), "0".into()], vec![], "start_block"),
    ];
    for (args, env, setting) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        for (what, (code, out)) in [("config check", cvm.config_check(&args, &env)), ("run", cvm.run(&args, &env))] {
            assert_eq!(code, 2, "{what} {args:?} {env:?} must exit 2:\n{out}");
            assert!(
                out.contains(&format!("setting `{setting}`")),
                "{what} {args:?} {env:?} must name {setting}:\n{out}"
            );
        }
    }
}

#[test]
fn a_compose_that_leaves_a_security_setting_to_the_operator_is_refused() {
    let scratch = Scratch::new("measured-left-open");
    // (name, the compose's YAML, the setting the refusal must name, where it must say it comes from)
    type Yaml = fn(&Path, &Path) -> String;
    let cases: [(&str, Yaml, &str, &str); 4] = [
        ("merge", |s, d| agent_yaml(s, d, "      <<: *extra\n", ""), "dangerously_trust_rpc", "${TRUST}"),
        (
            "pccs-and-arg",
            |s, d| agent_yaml(s, d, "", "    command: [\"run\", \"--jitter-ms=${J}\"]\n"),
            "jitter_ms",
            "${J}",
        ),
        ("whole-arg", |s, d| agent_yaml(s, d, "", "    command: [\"run\", \"${X}\"]\n"), "measured_compose", "${X}"),
        ("env-file", |s, d| agent_yaml(s, d, "", "    env_file: agent.env\n"), "measured_compose", "agent.env"),
    ];
    for (name, yaml, setting, source) in cases {
        let cvm = Cvm::start(&scratch, name, yaml);
        for (what, (code, out)) in [("config check", cvm.config_check(&[], &[])), ("run", cvm.run(&[], &[]))] {
            assert_eq!(code, 2, "{name}: {what} must exit 2:\n{out}");
            assert!(out.contains(&format!("setting `{setting}`")), "{name}: {what} must name {setting}:\n{out}");
            assert!(out.contains(source), "{name}: {what} must say where it comes from ({source}):\n{out}");
        }
    }
}
