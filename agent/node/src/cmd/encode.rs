//! `replicatoor encode request`: the exact `requestSecret` calldata a node would post for a quote, an
//! event log and an HPKE public key, so anyone can reproduce and price a request without running a
//! node. The agent sends the same call ([`Attestation::request_call`]: the quote in compact form
//! where it has one, PROTOCOL.md §3.9) with the event log compacted by the same code.

use crate::{
    args::{hex_n, load_event_log, read_bytes},
    provider::Attestation,
};
use alloy::sol_types::SolCall;
use anyhow::Context as _;
use replicatoor_chain::UpgradeOperator as Op;
use replicatoor_encode::eventlog::to_compact;
use std::{path::PathBuf, process::ExitCode};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print the `requestSecret` calldata (0x-hex, one line) for a quote, event log and HPKE key.
    Request(RequestArgs),
}

#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    /// The quote: raw bytes, hex, or a Dstack GetQuote response (JSON with a `quote` field).
    #[arg(long)]
    pub quote: PathBuf,
    /// The event log: Dstack's JSON event log, a whole GetQuote response, or the compact form.
    #[arg(long)]
    pub event_log: PathBuf,
    /// The node's X25519 HPKE public key (32 bytes, hex), the key the quote's report_data binds.
    #[arg(long)]
    pub pubkey: String,
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Request(a) => {
            let call = request_call(&a)?;
            println!("0x{}", hex::encode(call.abi_encode()));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn request_call(a: &RequestArgs) -> anyhow::Result<Op::requestSecretCall> {
    let pubkey = hex_n::<32>("--pubkey", &a.pubkey)?;
    let quote = quote_bytes(&a.quote)?;
    let event_log = to_compact(&load_event_log(&a.event_log)?.runtime).context("compacting the event log")?;
    Ok(Attestation { quote, event_log }.request_call(pubkey))
}

/// A quote file in any form the tools accept, plus a GetQuote response.
fn quote_bytes(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(&raw) {
        let q = m.get("quote").and_then(|q| q.as_str()).context("JSON without a `quote` string")?;
        return hex::decode(q.trim_start_matches("0x")).context("the response's quote is not hex");
    }
    read_bytes(path)
}
