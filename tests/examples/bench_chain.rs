//! The chain side of `script/bench.sh`: gas of every message against its calldata floor, and load
//! for real holders on a local anvil (new-node identities, simulated quotes, delivery delays).
//!
//! ```text
//! bench_chain --rpc-url URL gas   --out FILE                       deploy a fresh contract, measure gas
//! bench_chain --rpc-url URL burst --contract A --compose F --n N --out FILE   N requests at once, wait for answers
//! bench_chain --rpc-url URL post  --contract A --compose F --n N --out FILE   post N requests, do not wait
//! bench_chain --rpc-url URL wait  --contract A --requests FILE --out FILE     wait for posted requests' answers
//! bench_chain --rpc-url URL junk  --contract A --compose F --seconds S --out FILE   junk requests, as fast as the chain takes them
//! ```
//! `burst` with `--n 1` is the single-request latency run. New identities get random keys funded
//! with `anvil_setBalance` (dev chains only). Prints a summary; writes JSON. A bench, not a test.

use alloy::{
    eips::BlockId,
    primitives::{Address, Bytes, B256, U256},
    providers::Provider,
    rpc::types::Filter,
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use replicatoor::admin;
use replicatoor_chain::{Chain, TxOutcome, UpgradeOperator as Op};
use replicatoor_core::{
    crypto::{eip712, HpkeKeypair},
    protocol::Policy,
};
use replicatoor_testkit::simulated::SimulatedTd;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};
use tokio::task::JoinSet;

/// anvil's account 0 (a public development key): deployer, owner and relayer of the gas bench.
const ANVIL_KEY_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

#[derive(Parser)]
struct Cli {
    #[arg(long)]
    rpc_url: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Deploy a fresh contract and measure the gas of each message against the EIP-7623 floor.
    Gas {
        #[arg(long)]
        out: PathBuf,
    },
    /// Post N requests at once from N new identities, then wait until every one is answered.
    Burst {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 1)]
        n: usize,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Post N requests from N new identities and write them to a file, without waiting.
    Post {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 1)]
        n: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Wait until every request in a `post` file is answered.
    Wait {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        requests: Vec<PathBuf>,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        /// Do not scan every block for failed transactions (long ranges, e.g. after mining many blocks).
        #[arg(long)]
        no_failed_scan: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Post junk requests for SECONDS, as fast as the chain takes them, from ACCOUNTS new identities
    /// (half garbage quotes, half simulated quotes bound to another requester), never waiting for
    /// their answers: the attacker of issue 26.
    Junk {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 180)]
        seconds: u64,
        #[arg(long, default_value_t = 8)]
        accounts: usize,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct Target {
    #[arg(long)]
    contract: Address,
    /// The app-compose file the simulated new nodes run (its hash must be an approved app reference).
    #[arg(long)]
    compose: PathBuf,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let url = cli.rpc_url.as_str();
    match cli.cmd {
        Cmd::Gas { out } => write(&out, &gas(url).await?),
        Cmd::Burst { target, n, timeout_secs, out } => {
            let reqs = prepare(url, &target, n).await?;
            let started = Instant::now();
            let posted = post_all(reqs, started).await?;
            let report = wait(url, target.contract, &posted, started, Duration::from_secs(timeout_secs), true).await?;
            write(&out, &report)
        }
        Cmd::Post { target, n, out } => {
            let reqs = prepare(url, &target, n).await?;
            let posted = post_all(reqs, Instant::now()).await?;
            let v: Vec<Value> = posted.iter().map(Posted::to_json).collect();
            write(&out, &Value::Array(v))
        }
        Cmd::Wait { target, requests, timeout_secs, no_failed_scan, out } => {
            let mut posted = Vec::new();
            for f in &requests {
                let v: Vec<Value> =
                    serde_json::from_slice(&std::fs::read(f).with_context(|| f.display().to_string())?)?;
                posted.extend(v.iter().map(Posted::from_json).collect::<anyhow::Result<Vec<_>>>()?);
            }
            let timeout = Duration::from_secs(timeout_secs);
            let report = wait(url, target.contract, &posted, Instant::now(), timeout, !no_failed_scan).await?;
            write(&out, &report)
        }
        Cmd::Junk { target, seconds, accounts, out } => write(&out, &junk(url, &target, seconds, accounts).await?),
    }
}

/// Junk requests each account keeps in flight (sent, receipt not yet awaited).
const JUNK_IN_FLIGHT: usize = 64;

/// The junk flood: each account submits without waiting for receipts, up to [`JUNK_IN_FLIGHT`] at
/// a time, until `seconds` are over. What was mined is read from the contract's request count (it
/// includes the genuine requests posted meanwhile); the poster never waits on a receipt longer than
/// 30 s (an account whose transaction is not mined by then, e.g. behind a nonce gap left by a failed
/// send under load, reads its nonce from the node again and goes on).
async fn junk(url: &str, t: &Target, seconds: u64, accounts: usize) -> anyhow::Result<Value> {
    let nodes = prepare(url, t, accounts).await?;
    // A flood fills blocks, so the base fee climbs block after block: fund the attacker for that.
    for node in &nodes {
        let who = node.chain.sender().context("a junk account")?;
        let _: Value =
            node.chain.provider().raw_request("anvil_setBalance".into(), (who, U256::from(10u128.pow(36)))).await?;
    }
    let reader = Chain::connect(url, t.contract, None).await?;
    let count = || async { anyhow::Ok(reader.contract().requestCount().call().await?) };
    let (before, first) = (count().await?, reader.head().await?);
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut set = JoinSet::new();
    for (k, node) in nodes.into_iter().enumerate() {
        set.spawn(async move {
            let mut in_flight = std::collections::VecDeque::new();
            let mut i = 0u64;
            while Instant::now() < until {
                i += 1;
                let pk = B256::from(U256::from((k as u64) << 40 | i));
                // A quote for another key (report_data mismatch), or bytes that are no quote at all.
                let (quote, log) = if i.is_multiple_of(2) {
                    (node.quote.clone(), node.event_log.clone())
                } else {
                    (b"junk".to_vec(), vec![])
                };
                // A flood fills blocks and the base fee climbs: bid far above it so no junk gets stuck.
                let call = node.chain.contract().requestSecret(pk, quote.into(), log.into());
                let call = call.max_fee_per_gas(10u128.pow(15)).max_priority_fee_per_gas(10u128.pow(9));
                match node.chain.submit(call).await {
                    Ok(s) => in_flight.push_back(s),
                    Err(_) => node.chain.forget_nonce().await,
                }
                if in_flight.len() >= JUNK_IN_FLIGHT {
                    if let Some(s) = in_flight.pop_front() {
                        if node.chain.confirm(s, Duration::from_secs(30)).await.is_err() {
                            in_flight.clear();
                        }
                    }
                }
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // the last ones are mined
    let (after, last) = (count().await?, reader.head().await?);
    let mined = u64::try_from(after.saturating_sub(before)).unwrap_or(u64::MAX);
    let wall = started.elapsed().as_secs_f64();
    let report = json!({
        "junk_requests": mined, "seconds": (wall * 10.0).round() / 10.0,
        "per_second": (mined as f64 / wall * 10.0).round() / 10.0, "first_block": first, "last_block": last,
    });
    println!("{}", serde_json::to_string(&report)?);
    Ok(report)
}

fn write(path: &Path, v: &Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(v)? + "\n").with_context(|| path.display().to_string())
}

// ------------------------------------------------------------------------------------------ gas

/// EIP-7623 calldata floor of a transaction input: 21000 + 10 × (zero bytes + 4 × non-zero bytes).
fn floor(input: &[u8]) -> u64 {
    let zeros = input.iter().filter(|b| **b == 0).count() as u64;
    21_000 + 10 * (zeros + 4 * (input.len() as u64 - zeros))
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).expect("OS randomness");
    v
}

async fn gas(url: &str) -> anyhow::Result<Value> {
    let owner: PrivateKeySigner = ANVIL_KEY_0.parse()?;
    let policy =
        Policy { tcb_statuses: 1, allow_debug: false, allow_simulated: false, min_tcb_evaluation_data_number: 0 };
    let (contract, _) = admin::deploy(url, owner.clone(), owner.address(), 0, policy).await?;
    let chain = Chain::connect(url, contract, Some(owner)).await?;
    let dep = chain.deployment();
    let c = chain.contract();
    let mut rows: Vec<Value> = Vec::new();

    let m: [[u8; 48]; 4] = std::array::from_fn(|_| random(48).try_into().expect("48 bytes"));
    let (os_ref, o) = admin::propose_os(&chain, m, "bench os", &[]).await?;
    rows.push(measure(&chain, "proposeOsReference", "OS reference (4 x 48-byte measurements)", None, &o).await?);
    let compose: [u8; 32] = random(32).try_into().expect("32 bytes");
    let (app_ref, o) = admin::propose_app(&chain, compose, "bench app", &[]).await?;
    rows.push(measure(&chain, "proposeAppReference", "app reference (compose hash)", None, &o).await?);

    let cluster = PrivateKeySigner::random();
    let o = chain.send(c.proposeGenesis(cluster.address(), random(5000).into(), random(450).into())).await?;
    rows.push(measure(&chain, "proposeGenesis", "5,000 B quote + 450 B event log", None, &o).await?);
    let o = chain
        .send(c.approveGenesis(U256::from(1), cluster.address(), 1, os_ref, app_ref, "bench genesis".into()))
        .await?;
    rows.push(measure(&chain, "approveGenesis", "owner approves proposal 1", None, &o).await?);

    let (id, request_key, o) = request(&chain).await?;
    rows.push(measure(&chain, "requestSecret", "5,000 B quote + 3,000 B event log", Some(FLOOR_GOAL), &o).await?);
    // A genuine Dstack request, as nodes post it (compact quote, PROTOCOL.md §3.9) and raw.
    let dstack = dstack_attestation()?;
    let o = chain.send(c.call_builder(&dstack.request_call(random(32).try_into().expect("32 bytes")))).await?;
    let what = format!("genuine Dstack quote, compact form ({} B) + its real event log", dstack.posted_quote().len());
    let mut row = measure(&chain, "requestSecret Dstack", &what, Some(FLOOR_GOAL), &o).await?;
    row["goal_max_gas"] = json!(DSTACK_REQUEST_GOAL_GAS);
    rows.push(row);
    let key = B256::from(<[u8; 32]>::try_from(random(32)).expect("32 bytes"));
    let raw = c.requestSecret(key, dstack.quote.clone().into(), dstack.event_log.clone().into());
    let o = chain.send(raw).await?;
    let what = format!("genuine Dstack quote, raw form ({} B) + its real event log", dstack.quote.len());
    rows.push(measure(&chain, "requestSecret Dstack raw", &what, None, &o).await?);
    let mut first = Some((id, request_key));
    let policy_hash = policy.hash();
    for kib in [1usize, 16, 96] {
        let (id, request_key) = match first.take() {
            Some(r) => r,
            None => {
                let (id, key, _) = request(&chain).await?;
                (id, key)
            }
        };
        // ciphertext = bundle (49-byte header + file) + 16-byte AEAD tag.
        let (enc, ct) = (random(32), random(kib * 1024 + 49 + 16));
        let d = replicatoor_testkit::delivery_record(id, request_key, policy_hash, os_ref, app_ref, &enc, &ct);
        let sig = eip712::sign(&dep, &d, &cluster)?;
        let call = c.deliverSecret(
            id,
            request_key,
            policy_hash,
            os_ref,
            app_ref,
            enc.into(),
            ct.into(),
            Bytes::copy_from_slice(&sig),
        );
        let o = chain.send(call).await?;
        let what = format!("{kib} KiB bundle: {} B ciphertext + 32 B key + signature", kib * 1024 + 65);
        rows.push(measure(&chain, &format!("deliverSecret {kib} KiB"), &what, Some(FLOOR_GOAL), &o).await?);
    }
    // A pinned holder's batch commitment (PROTOCOL.md §5.3): once per batch, before its sealed
    // deliveries leave. The first one fills the account's slot, later ones rewrite it.
    let o = chain.send(c.commit(B256::from(<[u8; 32]>::try_from(random(32)).expect("32 bytes")))).await?;
    rows.push(measure(&chain, "commit first", "a holder account's first batch commitment", None, &o).await?);
    let o = chain.send(c.commit(B256::from(<[u8; 32]>::try_from(random(32)).expect("32 bytes")))).await?;
    rows.push(measure(&chain, "commit", "a later batch commitment (slot rewritten)", None, &o).await?);
    let (id, request_key, _) = request(&chain).await?;
    let sig = eip712::sign(&dep, &eip712::Refusal { requestId: id, request: request_key, reason: 1 }, &cluster)?;
    let o = chain.send(c.refuseRequest(id, request_key, 1, Bytes::copy_from_slice(&sig))).await?;
    rows.push(measure(&chain, "refuseRequest", "signed reason code", None, &o).await?);
    Ok(json!({
        "note": "EIP-7623 floor = 21000 + 10 * (zero bytes + 4 * non-zero bytes) of the tx input; ratio = gas_used / floor",
        "operations": rows,
    }))
}

/// Issue #13's goal for requests and deliveries: at most this multiple of their EIP-7623 calldata
/// floor (what their bytes cost anyway), so execution adds little.
const FLOOR_GOAL: f64 = 1.06;

/// Issue #15's goal for a genuine Dstack request (stretch: 120,000).
const DSTACK_REQUEST_GOAL_GAS: u64 = 150_000;

/// The recorded Dstack GetQuote response (tests/fixtures/dstack): its raw quote and its event log
/// compacted, as the agent's Dstack provider makes them.
fn dstack_attestation() -> anyhow::Result<replicatoor::provider::Attestation> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dstack/tdx-lite-getquote.json");
    let resp: Value = serde_json::from_slice(&std::fs::read(&path).with_context(|| path.display().to_string())?)?;
    let quote = hex::decode(resp["quote"].as_str().context("quote")?)?;
    let log = replicatoor_encode::eventlog::from_dstack_json(resp["event_log"].as_str().context("log")?)?;
    Ok(replicatoor::provider::Attestation { quote, event_log: replicatoor_encode::eventlog::to_compact(&log.runtime)? })
}

/// A request with a 5,000-byte quote and a 3,000-byte event log (random bytes); returns its id.
/// A junk request (gas only): its id and its `request` key (what an answer to it signs).
async fn request(chain: &Chain) -> anyhow::Result<(U256, B256, TxOutcome)> {
    let c = chain.contract();
    let key: [u8; 32] = random(32).try_into().expect("32 bytes");
    let o = chain.send(c.requestSecret(B256::from(key), random(5000).into(), random(3000).into())).await?;
    let request_key =
        replicatoor_core::protocol::request_key(&key, chain.sender().context("the bench sends as the owner")?);
    let id = o
        .receipt
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<Op::SecretRequested>().ok())
        .context("receipt without SecretRequested")?
        .inner
        .data
        .requestId;
    Ok((id, request_key, o))
}

/// Gas used by a mined transaction against the floor of its input.
async fn measure(chain: &Chain, name: &str, what: &str, goal: Option<f64>, o: &TxOutcome) -> anyhow::Result<Value> {
    let tx: Value = chain.provider().raw_request("eth_getTransactionByHash".into(), (o.tx_hash,)).await?;
    let input = hex::decode(tx["input"].as_str().context("tx input")?.trim_start_matches("0x"))?;
    let f = floor(&input);
    let ratio = o.gas_used as f64 / f as f64;
    println!(
        "  {name:<22} {:>8} B {:>10} gas {:>10} floor {ratio:>6.3}{}",
        input.len(),
        o.gas_used,
        f,
        goal.map_or(String::new(), |g| format!("  (goal <= {g})"))
    );
    Ok(json!({
        "operation": name, "what": what, "calldata_bytes": input.len(), "gas_used": o.gas_used,
        "floor": f, "ratio": (ratio * 1000.0).round() / 1000.0, "goal_max_ratio": goal,
    }))
}

// ------------------------------------------------------------------------------------------ load

/// A new node ready to post its request.
struct NewNode {
    chain: Chain,
    hpke_pub_key: [u8; 32],
    quote: Vec<u8>,
    event_log: Vec<u8>,
}

/// A request on chain.
struct Posted {
    id: U256,
    block: u64,
    /// Wall-clock time from the start of the run to the request's receipt.
    receipt_after: Duration,
}

impl Posted {
    fn to_json(&self) -> Value {
        json!({ "id": self.id.to_string(), "block": self.block })
    }
    fn from_json(v: &Value) -> anyhow::Result<Posted> {
        Ok(Posted {
            id: v["id"].as_str().context("id")?.parse()?,
            block: v["block"].as_u64().context("block")?,
            receipt_after: Duration::ZERO,
        })
    }
}

/// Fund N fresh identities and build each one's simulated quote and compact event log.
async fn prepare(url: &str, t: &Target, n: usize) -> anyhow::Result<Vec<NewNode>> {
    let compose = std::fs::read(&t.compose).with_context(|| t.compose.display().to_string())?;
    let td = SimulatedTd::new(Sha256::digest(&compose).into());
    let funder = Chain::connect(url, t.contract, None).await?;
    let dep = funder.deployment();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let key = PrivateKeySigner::random();
        let _: Value = funder
            .provider()
            .raw_request("anvil_setBalance".into(), (key.address(), U256::from(10u128.pow(20))))
            .await
            .context("anvil_setBalance (a dev chain is needed)")?;
        let hpke = HpkeKeypair::generate();
        let (quote, event_log) =
            td.attest(dep.request_report_data(key.address(), &hpke.public())).map_err(anyhow::Error::msg)?;
        let chain = Chain::connect(url, t.contract, Some(key)).await?;
        out.push(NewNode { chain, hpke_pub_key: hpke.public(), quote, event_log });
    }
    Ok(out)
}

/// Send every request at once; returns them in the order they were mined.
async fn post_all(nodes: Vec<NewNode>, start: Instant) -> anyhow::Result<Vec<Posted>> {
    let mut set = JoinSet::new();
    for node in nodes {
        set.spawn(async move {
            let att = replicatoor::provider::Attestation { quote: node.quote, event_log: node.event_log };
            let o = node.chain.send(node.chain.contract().call_builder(&att.request_call(node.hpke_pub_key))).await?;
            let id = o
                .receipt
                .logs()
                .iter()
                .find_map(|l| l.log_decode::<Op::SecretRequested>().ok())
                .context("receipt without SecretRequested")?
                .inner
                .data
                .requestId;
            anyhow::Ok(Posted { id, block: o.block, receipt_after: start.elapsed() })
        });
    }
    let mut posted = Vec::new();
    while let Some(r) = set.join_next().await {
        posted.push(r??);
    }
    posted.sort_by_key(|p| (p.block, p.id));
    Ok(posted)
}

/// First answer seen for a request.
struct Answer {
    block: u64,
    delivered: bool,
    seen_after: Duration,
    count: usize,
}

/// Wait until every posted request has an answer; report delays, duplicates and failed transactions.
async fn wait(
    url: &str,
    contract: Address,
    posted: &[Posted],
    started: Instant,
    timeout: Duration,
    scan_failed: bool,
) -> anyhow::Result<Value> {
    let chain = Chain::connect(url, contract, None).await?;
    let p = chain.provider();
    let Some(first_block) = posted.iter().map(|r| r.block).min() else { bail!("no requests") };
    let wanted: BTreeMap<U256, u64> = posted.iter().map(|r| (r.id, r.block)).collect();
    let mut answers: BTreeMap<U256, Answer> = BTreeMap::new();
    let mut from = first_block;
    let deadline = Instant::now() + timeout;
    loop {
        let head = p.get_block_number().await?;
        if head >= from {
            for (sig, delivered) in
                [(Op::SecretDelivered::SIGNATURE_HASH, true), (Op::RequestRefused::SIGNATURE_HASH, false)]
            {
                let f = Filter::new().address(contract).event_signature(sig).from_block(from).to_block(head);
                for log in p.get_logs(&f).await? {
                    let Some(id) = log.topics().get(1).map(|t| U256::from_be_bytes(t.0)) else { continue };
                    if !wanted.contains_key(&id) {
                        continue;
                    }
                    let block = log.block_number.unwrap_or(head);
                    let seen_after = started.elapsed();
                    answers.entry(id).and_modify(|a| a.count += 1).or_insert(Answer {
                        block,
                        delivered,
                        seen_after,
                        count: 1,
                    });
                }
            }
            from = head + 1;
        }
        if answers.len() == wanted.len() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last_block = answers.values().map(|a| a.block).max().unwrap_or(first_block);
    // Failed transactions to the contract while the run lasted (lost races revert), by sender.
    let mut failed = 0u64;
    let mut failed_by: BTreeMap<String, u64> = BTreeMap::new();
    let scan_to = if scan_failed { last_block + 2 } else { first_block.saturating_sub(1) };
    for b in first_block..=scan_to {
        let Some(receipts) = p.get_block_receipts(BlockId::number(b)).await? else { continue };
        for r in receipts.iter().filter(|r| !r.status() && r.to == Some(contract)) {
            failed += 1;
            *failed_by.entry(r.from.to_string()).or_default() += 1;
        }
    }
    let ts = |b: u64| {
        let chain = chain.clone();
        async move { chain.block(b).await.map(|x| x.timestamp) }
    };
    let (t_first, t_last) = (ts(first_block).await?, ts(last_block).await?);
    let mut delays: Vec<u64> =
        answers.iter().map(|(id, a)| a.block.saturating_sub(*wanted.get(id).unwrap_or(&a.block))).collect();
    delays.sort_unstable();
    let pct = |q: f64| delays.get(((delays.len() as f64 * q).ceil() as usize).saturating_sub(1)).copied();
    let within = |k: u64| delays.iter().filter(|d| **d <= k).count();
    let duplicates = answers.values().filter(|a| a.count > 1).count();
    let wall_last = answers.values().map(|a| a.seen_after).max().unwrap_or_default();
    let n = wanted.len();
    let single = if n == 1 {
        let (r, a) = (&posted[0], answers.values().next());
        a.map(|a| {
            json!({
                "request_block": r.block, "delivery_block": a.block, "blocks": a.block - r.block,
                "block_time_ms": (t_last - t_first) * 1000,
                "wall_ms_receipt_to_delivery_seen": (a.seen_after.saturating_sub(r.receipt_after)).as_millis() as u64,
            })
        })
    } else {
        None
    };
    let report = json!({
        "requests": n,
        "answered": answers.len(),
        "delivered": answers.values().filter(|a| a.delivered).count(),
        "refused": answers.values().filter(|a| !a.delivered).count(),
        "duplicate_answers_on_chain": duplicates,
        "failed_txs_to_contract": if scan_failed { json!(failed) } else { Value::Null },
        "failed_txs_by_sender": failed_by,
        "first_request_block": first_block,
        "last_answer_block": last_block,
        "chain_seconds_first_request_to_last_answer": t_last - t_first,
        "wall_seconds_first_send_to_last_answer_seen": (wall_last.as_secs_f64() * 100.0).round() / 100.0,
        "requests_per_second_chain": if t_last > t_first { (n as f64 / (t_last - t_first) as f64 * 100.0).round() / 100.0 } else { n as f64 },
        "delay_blocks": { "p50": pct(0.50), "p95": pct(0.95), "max": delays.last() },
        "within_2_blocks": within(2),
        "within_4_blocks": within(4),
        "timed_out": answers.len() < n,
        "single": single,
    });
    println!("{}", serde_json::to_string(&report)?);
    Ok(report)
}
