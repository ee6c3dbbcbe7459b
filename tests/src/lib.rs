//! The anvil harness the suites share: a real anvil chain, the real contract and real `replicatoor`
//! processes (built with the `simulated` and `failpoints` features, which this crate turns on).

pub mod proxy;

use alloy::{
    eips::BlockId,
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::{Filter, Log},
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use base64::Engine as _;
use replicatoor::admin;
use replicatoor_chain::{Chain, ChainError, TxOutcome, UpgradeOperator as Op};
use replicatoor_core::{
    attest::{
        collateral::NoCollateral,
        pipeline::{self, Context, Decision},
        AcceptedRequest, RequestBinding, Verifier,
    },
    crypto::SecretBundle,
    delivery,
    protocol::Policy,
};
use replicatoor_testkit::{
    beacon::{self, Committee, SimBeacon},
    doubles::AllowList,
    simulated::{self, SimulatedTd},
};
use sha2::{Digest, Sha256};
use std::{
    fs,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};
use zeroize::Zeroizing;

/// anvil's well-known development keys (mnemonic "test test ... junk").
pub const KEYS: [&str; 10] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
];

pub fn key(i: usize) -> PrivateKeySigner {
    KEYS[i].parse().expect("valid anvil key")
}

/// The suites' build of the command line (`src/bin/replicatoor-dev.rs`: the shipped `replicatoor`
/// with the `simulated` and `failpoints` features). Cargo puts it beside the directory of the test
/// or example executable that is running (`target/<profile>/{deps,examples}/…`).
pub fn bin() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the running test executable");
    let bin = exe.parent().and_then(Path::parent).expect("target/<profile>").join("replicatoor-dev");
    assert!(bin.exists(), "{} is missing: run the suites with `cargo test -p replicatoor-tests`", bin.display());
    bin
}

/// A simulated Dstack guest agent (`replicatoor-dev dev guest-agent`) serving `compose` on `socket`,
/// returned once the socket accepts connections. The caller kills it.
pub fn start_guest_agent(socket: &Path, compose: &Path) -> Child {
    let child = Command::new(bin())
        .args(["dev", "guest-agent", "--socket"])
        .arg(socket)
        .arg("--compose")
        .arg(compose)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the guest agent");
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "the guest agent did not start on {}", socket.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// `replicatoor-dev <args>` run to completion, with no sender key, RPC or contract from the
/// environment (each command gets what it needs as flags).
pub fn cli(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .env_remove("REPLICATOOR_SENDER_KEY")
        .env_remove("REPLICATOOR_RPC_URL")
        .env_remove("REPLICATOOR_CONTRACT")
        .stdin(Stdio::null())
        .output()
        .expect("run replicatoor")
}

/// [`cli`], which must succeed: its standard output.
pub fn cli_ok(args: &[&str]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "replicatoor {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn compose_good() -> PathBuf {
    root().join("examples/app-compose.json")
}

pub fn compose_bad() -> PathBuf {
    root().join("examples/app-compose-unapproved.json")
}

pub fn compose_hash(p: &Path) -> [u8; 32] {
    Sha256::digest(fs::read(p).expect("compose file")).into()
}

fn tool(name: &str) -> PathBuf {
    let p = root().join(".toolchain/bin").join(name);
    assert!(p.exists(), "{} missing: run script/setup.sh first", p.display());
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A scratch directory removed at drop (kept when the test panics, for its logs).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("replicatoor-e2e-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        } else {
            eprintln!("test failed: logs kept in {}", self.0.display());
        }
    }
}

/// A child process killed at drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
    pub dir: PathBuf,
    /// Port of the agent's health/metrics endpoint (0 for non-agents).
    pub http_port: u16,
}

impl Proc {
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
    pub fn secret_path(&self) -> PathBuf {
        self.dir.join("secret.bin")
    }
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
    /// Wait for the process to exit (panics after `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(start.elapsed() < timeout, "{} did not exit within {timeout:?}; log:\n{}", self.name, self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    /// GET a path of the agent's health/metrics endpoint: (status code, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.http_port)).await.expect("connect to agent http");
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.expect("read");
        let code = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (code, body)
    }

    /// SIGTERM, then wait.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local chain with a deployed, configured UpgradeOperator.
pub struct Net {
    pub anvil: Proc,
    pub url: String,
    pub contract: Address,
    pub start: u64,
    pub owner: Chain,
    pub scratch: Scratch,
    /// With [`Net::start_pinned`]: the simulated beacon, and the deployment pin every agent gets.
    pub pin: Option<(SimBeacon, String)>,
}

impl Net {
    /// anvil with 1 s blocks, the contract deployed with `policy`, the simulated OS and the good
    /// app compose approved (delay 0).
    pub async fn start(name: &str, policy: Policy) -> Net {
        Self::launch(name, policy, 0, &["--block-time", "1"]).await
    }

    /// Like [`Net::start`], but the contract timelocks widenings by `widening_delay` seconds (as in
    /// production). The OS and app references proposed at the start are let through their delay by
    /// moving the chain's clock forward, so the net starts with both allowed, like [`Net::start`]'s.
    pub async fn start_delayed(name: &str, policy: Policy, widening_delay: u64) -> Net {
        let net = Self::launch(name, policy, widening_delay, &["--block-time", "1"]).await;
        net.advance(widening_delay).await;
        net
    }

    /// Like [`Net::start`], with the chain's clock starting at `unix` (e.g. inside a genuine quote's
    /// collateral window).
    pub async fn start_at(name: &str, policy: Policy, unix: u64) -> Net {
        Self::launch(name, policy, 0, &["--block-time", "1", "--timestamp", &unix.to_string()]).await
    }

    /// Like [`Net::start`], but anvil mines each transaction at once: for tests that only send
    /// and call from the test itself (agents expect `start`'s steady 1 s blocks).
    pub async fn instant(name: &str, policy: Policy) -> Net {
        Self::launch(name, policy, 0, &[]).await
    }

    async fn launch(name: &str, policy: Policy, widening_delay: u64, anvil_args: &[&str]) -> Net {
        let scratch = Scratch::new(name);
        let port = free_port();
        let log = fs::File::create(scratch.0.join("anvil.log")).expect("anvil log");
        let child = Command::new(tool("anvil"))
            .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
            .args(anvil_args)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("start anvil");
        let anvil = Proc { child, name: "anvil".into(), dir: scratch.0.clone(), http_port: 0 };
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        let (contract, block) = loop {
            match admin::deploy(&url, key(0), key(0).address(), widening_delay, policy).await {
                Ok(v) => break v,
                Err(_) if start.elapsed() < Duration::from_secs(20) => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(e) => panic!("deploy: {e:#}"),
            }
        };
        let owner = Chain::connect(&url, contract, Some(key(0))).await.expect("owner client");
        let td = SimulatedTd::new([0; 32]);
        admin::propose_os(&owner, [td.mr_td, td.rtmr0, td.rtmr1, td.rtmr2], "simulated OS", &[])
            .await
            .expect("propose os");
        admin::propose_app(&owner, compose_hash(&compose_good()), "demo app", &[]).await.expect("propose app");
        Net { anvil, url, contract, start: block, owner, scratch, pin: None }
    }

    /// Like [`Net::start`], with a simulated beacon for the chain: every agent started through this
    /// net gets `--deployment` (a simulated-beacon pin) and `--beacon-url`, so it decides, installs and
    /// starts on chain state proven against sync-committee-signed headers, as on mainnet.
    pub async fn start_pinned(name: &str, policy: Policy) -> Net {
        let mut net = Self::start(name, policy).await;
        let b = beacon::serve(&net.url, "127.0.0.1:0".parse().expect("address"), Committee::Public)
            .await
            .expect("simulated beacon");
        let pin = net.pin_for(&b);
        net.pin = Some((b, pin));
        net
    }

    /// The deployment pin for this net under the simulated beacon `b` (what a compose would carry
    /// literally).
    pub fn pin_for(&self, b: &SimBeacon) -> String {
        replicatoor::simulated::beacon_pin(b, 31337, self.contract, self.start)
    }

    /// The default dev policy: UpToDate only, simulated quotes allowed, and a TCB evaluation floor
    /// (never 0, as in production) that the simulated PKI's collateral meets.
    pub fn dev_policy() -> Policy {
        Policy {
            tcb_statuses: 1,
            allow_debug: false,
            allow_simulated: true,
            min_tcb_evaluation_data_number: replicatoor_testkit::sim_pki::TCB_EVALUATION_DATA_NUMBER,
        }
    }

    /// Start `replicatoor run` as `name`, paying with anvil key `key_index`.
    pub fn agent(&self, name: &str, key_index: usize, compose: &Path, extra: &[&str]) -> Proc {
        self.agent_with(name, key_index, compose, extra, &[])
    }

    pub fn agent_with(
        &self,
        name: &str,
        key_index: usize,
        compose: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Proc {
        self.agent_via(&self.url, name, key_index, compose, extra, env)
    }

    /// Start a genesis agent and approve its proposal; returns once it holds the secret.
    pub async fn genesis(&self, key_index: usize) -> Proc {
        self.genesis_via(&self.url, key_index, &[]).await
    }

    /// [`Net::genesis`] through another RPC URL (e.g. a lying proxy) and with extra flags.
    pub async fn genesis_via(&self, rpc_url: &str, key_index: usize, extra: &[&str]) -> Proc {
        let args: Vec<&str> =
            ["--genesis", "--generate-secret", "64"].into_iter().chain(extra.iter().copied()).collect();
        let mut g = self.agent_via(rpc_url, "genesis", key_index, &compose_good(), &args, &[]);
        let c = self.owner.contract();
        wait_until("genesis proposal", Duration::from_secs(60), || async {
            c.genesisCount().call().await.map(|n| n >= U256::from(1)).unwrap_or(false)
        })
        .await;
        let v = replicatoor_core::attest::Verifier::new(Box::new(replicatoor_core::attest::collateral::NoCollateral))
            .dangerously_trust_simulated_quotes(simulated::anchor());
        admin::approve_genesis(&self.owner, &v, U256::from(1), "test genesis").await.expect("approve genesis");
        wait_for_file(&mut g, Duration::from_secs(60)).await;
        // The file is installed before the bundle is stored: a test that stops the node and starts it
        // again as a holder must wait until it holds the bundle (it then reports the holder role).
        wait_until("the genesis node to hold the bundle", Duration::from_secs(60), || async {
            g.status_json().await.is_some_and(|s| s["role"] == "holder")
        })
        .await;
        g
    }

    /// Found the cluster of `epoch` from the test, which then holds what a holder would (the cluster
    /// key and `secret`): `proposer` posts a simulated genesis quote of the good app, the owner
    /// verifies and approves it.
    pub async fn found_cluster(
        &self,
        proposer: &Chain,
        epoch: u64,
        secret: &[u8],
        note: &str,
    ) -> (SecretBundle, TxOutcome) {
        let k = Zeroizing::new(PrivateKeySigner::random().to_bytes().0);
        let bundle = SecretBundle::new(k, epoch, Zeroizing::new(secret.to_vec())).expect("bundle");
        let dep = self.owner.deployment();
        let (quote, log) = SimulatedTd::new(compose_hash(&compose_good()))
            .attest(dep.genesis_report_data(bundle.cluster_address(), epoch))
            .expect("quote");
        proposer
            .send(proposer.contract().proposeGenesis(bundle.cluster_address(), quote.into(), log.into()))
            .await
            .expect("propose genesis");
        let id = self.owner.contract().genesisCount().call().await.expect("genesisCount");
        let v = Verifier::new(Box::new(NoCollateral)).dangerously_trust_simulated_quotes(simulated::anchor());
        let o = admin::approve_genesis(&self.owner, &v, id, note).await.expect("approve genesis");
        (bundle, o)
    }

    /// Verify request `id` like a holder, seal `bundle` to it and send the delivery from `relayer`;
    /// returns the delivery's block.
    pub async fn deliver(&self, relayer: &Chain, bundle: &SecretBundle, id: u64) -> u64 {
        self.try_deliver(relayer, bundle, id).await.expect("deliver").block
    }

    /// [`Net::deliver`], which the contract may refuse (e.g. a bundle whose key is no longer the cluster's).
    pub async fn try_deliver(&self, relayer: &Chain, bundle: &SecretBundle, id: u64) -> Result<TxOutcome, ChainError> {
        let (_, _, acc) = self.accept_request(id).await;
        let d = delivery::seal(&self.owner.deployment(), &acc, bundle).expect("seal");
        let call = relayer.contract().deliverSecret(
            d.request_id,
            d.request,
            d.policy,
            d.os_ref,
            d.app_ref,
            d.encapsulated_key.into(),
            d.ciphertext.into(),
            d.signature.into(),
        );
        relayer.send(call).await
    }

    /// Request `id` as posted, accepted by the trust kernel the way a holder would (simulated PKI
    /// trusted, the dev policy, every reference allowed, at the request block's time): what a test
    /// seals its own (or a forged) delivery to.
    pub async fn accept_request(&self, id: u64) -> (Op::SecretRequested, Log, AcceptedRequest) {
        let logs = self.request_logs::<Op::SecretRequested>(U256::from(id)).await;
        let log = logs.into_iter().next().unwrap_or_else(|| panic!("request {id} is on chain"));
        let ev = log.log_decode::<Op::SecretRequested>().expect("decode SecretRequested").inner.data;
        let time = self.owner.block(log.block_number.expect("block")).await.expect("request block").timestamp;
        let v = Verifier::new(Box::new(NoCollateral)).dangerously_trust_simulated_quotes(simulated::anchor());
        let refs = AllowList::allow_all();
        let ctx = Context {
            deployment: self.owner.deployment(),
            verifier: &v,
            policy: Self::dev_policy(),
            references: &refs,
            now: time,
        };
        let binding =
            RequestBinding { request_id: ev.requestId, requester: ev.requester, hpke_pub_key: ev.hpkePubKey.0 };
        let Decision::Accept(accepted) = pipeline::evaluate(&ctx, binding, &ev.quote, &ev.eventLog).await else {
            panic!("request {id} should verify")
        };
        (ev, log, *accepted)
    }

    /// Logs of event `E` for one request id.
    pub async fn request_logs<E: SolEvent>(&self, id: U256) -> Vec<Log> {
        let f = Filter::new().address(self.contract).event_signature(E::SIGNATURE_HASH).topic1(id).from_block(0);
        self.owner.provider().get_logs(&f).await.expect("get_logs")
    }

    /// The `request` key a signed answer to request `id` names (keccak256(hpkePubKey ‖ requester)), from its event.
    pub async fn request_key(&self, id: u64) -> B256 {
        self.find_request_key(id).await.expect("request event")
    }

    /// Request `id`'s key, if its event exists.
    async fn find_request_key(&self, id: u64) -> Option<B256> {
        let logs = self.request_logs::<Op::SecretRequested>(U256::from(id)).await;
        let ev = logs.last()?.log_decode::<Op::SecretRequested>().expect("decode").inner.data;
        Some(replicatoor_core::protocol::request_key(&ev.hpkePubKey.0, ev.requester))
    }

    pub async fn request_count(&self) -> u64 {
        self.owner.contract().requestCount().call().await.expect("requestCount").to::<u64>()
    }

    /// Request `id`'s status (0 = no such request). The contract keeps statuses by request key, so this
    /// finds the key in the request's event first.
    pub async fn status(&self, id: u64) -> u8 {
        let Some(key) = self.find_request_key(id).await else { return 0 };
        self.owner.request_status(key, BlockId::latest()).await.map(|s| s as u8).expect("status")
    }

    pub async fn refusal_reason(&self, id: u64) -> Option<u8> {
        let logs = self.request_logs::<Op::RequestRefused>(U256::from(id)).await;
        logs.last().map(|l| l.log_decode::<Op::RequestRefused>().expect("decode").inner.data.reason)
    }

    /// anvil's address, for a proxy in front of it.
    pub fn anvil_addr(&self) -> SocketAddr {
        self.url.trim_start_matches("http://").parse().expect("anvil address")
    }

    /// Mine `blocks` empty blocks at once.
    pub async fn mine(&self, blocks: u64) {
        let _: serde_json::Value =
            self.owner.provider().raw_request("anvil_mine".into(), (blocks,)).await.expect("anvil_mine");
    }

    /// Move the chain's clock `secs` seconds forward and mine a block at the new time (a timelock
    /// passing without waiting for it).
    pub async fn advance(&self, secs: u64) {
        let p = self.owner.provider();
        let _: serde_json::Value = p.raw_request("evm_increaseTime".into(), (secs,)).await.expect("evm_increaseTime");
        let _: serde_json::Value = p.raw_request("evm_mine".into(), ()).await.expect("evm_mine");
    }

    /// The latest block's timestamp.
    pub async fn now(&self) -> u64 {
        self.owner.block(self.head().await).await.expect("latest block").timestamp
    }

    /// Replace the last `depth` blocks with empty ones at the same height. anvil 1.7 re-includes
    /// none of the dropped transactions (unlike geth, which returns them to its pool), and the
    /// senders' nonces roll back.
    pub async fn reorg(&self, depth: u64) {
        let none: Vec<serde_json::Value> = Vec::new();
        let _: serde_json::Value =
            self.owner.provider().raw_request("anvil_reorg".into(), (depth, none)).await.expect("anvil_reorg");
    }

    /// The transaction is neither mined nor waiting in the pool.
    pub async fn tx_is_gone(&self, tx: B256) -> bool {
        let p = self.owner.provider();
        p.get_transaction_receipt(tx).await.expect("receipt").is_none()
            && p.get_transaction_by_hash(tx).await.expect("tx").is_none()
    }

    pub async fn head(&self) -> u64 {
        self.owner.provider().get_block_number().await.expect("head")
    }
}

/// Poll `f` until true (panics after `timeout`).
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until the agent has installed its secret file.
pub async fn wait_for_file(p: &mut Proc, timeout: Duration) {
    let start = Instant::now();
    let path = p.secret_path();
    while !path.exists() {
        assert!(p.alive(), "{} exited before installing the secret; log:\n{}", p.name, p.log());
        assert!(
            start.elapsed() < timeout,
            "{} did not install the secret within {timeout:?}; log:\n{}",
            p.name,
            p.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Assert that no log contains the secret in raw, hex or base64 form.
pub fn assert_no_secret_in_logs(secret: &[u8], procs: &[&Proc]) {
    let hex_lower = hex::encode(secret);
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    for p in procs {
        let log = fs::read(p.dir.join("agent.log")).unwrap_or_default();
        let text = String::from_utf8_lossy(&log);
        assert!(!text.contains(&hex_lower), "{} logged the secret (hex)", p.name);
        assert!(!text.to_lowercase().contains(&hex_lower), "{} logged the secret (HEX)", p.name);
        assert!(!text.contains(&b64), "{} logged the secret (base64)", p.name);
        assert!(!log.windows(secret.len()).any(|w| w == secret), "{} logged the secret (raw)", p.name);
    }
}

impl Net {
    /// Like `agent_with`, but the agent reaches the chain through `rpc_url` (e.g. a fault-injecting proxy).
    pub fn agent_via(
        &self,
        rpc_url: &str,
        name: &str,
        key_index: usize,
        compose: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Proc {
        let dir = self.scratch.0.join(name);
        fs::create_dir_all(&dir).expect("agent dir");
        let log = fs::OpenOptions::new().create(true).append(true).open(dir.join("agent.log")).expect("agent log");
        let http_port = free_port();
        let mut cmd = Command::new(bin());
        cmd.arg("run")
            .args(["--rpc-url", rpc_url])
            .args(["--contract", &self.contract.to_string()])
            .args(["--start-block", &self.start.to_string()])
            .args(["--state-dir", &dir.join("state").display().to_string()])
            .args(["--secret-file", &dir.join("secret.bin").display().to_string()])
            .args(["--quote-provider", "simulated", "--allow-simulated-quotes"])
            .args(["--app-compose", &compose.display().to_string()])
            .args(["--confirmations", "1", "--poll-interval-ms", "200"])
            .args(["--http-addr", &format!("127.0.0.1:{http_port}")])
            .args(extra)
            .env("REPLICATOOR_SENDER_KEY", KEYS[key_index])
            .env("REPLICATOOR_LOG", "info,replicatoor=debug")
            .envs(env.iter().copied())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if !extra.contains(&"--deployment") {
            match &self.pin {
                Some((b, pin)) => cmd.args(["--deployment", pin, "--beacon-url", b.url()]),
                // An unpinned net: the agent must be told explicitly to trust its RPC.
                None => cmd.arg("--dangerously-trust-rpc"),
            };
        }
        let child = cmd.spawn().expect("start replicatoor");
        Proc { child, name: name.into(), dir, http_port }
    }
}

impl Proc {
    /// Wait for the process to exit without blocking the async runtime (panics after `timeout`).
    pub async fn exited(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(start.elapsed() < timeout, "{} did not exit within {timeout:?}; log:\n{}", self.name, self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL (like a power cut) and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The agent's /status document, or None while its endpoint is not up.
    pub async fn status_json(&self) -> Option<serde_json::Value> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.http_port)).await.ok()?;
        let req = "GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut buf)).await.ok()?.ok()?;
        let (head, body) = buf.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| serde_json::from_str(body).ok()).flatten()
    }
}
