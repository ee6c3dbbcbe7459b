//! `replicatoor verify-quote`: verify a quote offline against collateral at a fixed time, replay an
//! event log against it, and print every measurement.

use super::EXIT_NOT_VERIFIED;
use crate::args::{load_event_log, read_bytes};
use replicatoor_core::{
    attest::{quote::Measurements, VerifiedQuote, Verifier},
    protocol::app_reference_id,
};
use std::{path::PathBuf, process::ExitCode};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Quote file (binary, or hex text).
    #[arg(long)]
    pub quote: PathBuf,
    /// Collateral JSON (dcap-qvl QuoteCollateralV3 format).
    #[arg(long)]
    pub collateral: Option<PathBuf>,
    /// Verification time (unix seconds).
    #[arg(long)]
    pub at: u64,
    /// Dstack event log (JSON as returned by the guest agent, or our compact form) to replay.
    #[arg(long)]
    pub event_log: Option<PathBuf>,
    /// Require collateral of this Intel TCB evaluation or later, as a policy's
    /// `minTcbEvaluationDataNumber` does (0 = any).
    #[arg(long, default_value_t = 0)]
    pub min_tcb_evaluation_data_number: u32,
    /// Trust the simulated PKI (dev only).
    #[arg(long)]
    pub allow_simulated_quotes: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    Ok(if verify(&a)? { ExitCode::SUCCESS } else { ExitCode::from(EXIT_NOT_VERIFIED) })
}

/// Whether the quote (and the event log, if given) verified; prints the details either way.
fn verify(a: &Args) -> anyhow::Result<bool> {
    let quote = read_bytes(&a.quote)?;
    let collateral: Box<dyn crate::collateral::CollateralSource> = match &a.collateral {
        Some(p) => Box::new(crate::collateral::fixed_from_file(p)?),
        None => Box::new(crate::collateral::NoCollateral),
    };
    let mut v = Verifier::new(collateral);
    if a.allow_simulated_quotes {
        v = crate::simulated::trust(v)?;
    }
    let result = v.verify(&quote, a.at, a.min_tcb_evaluation_data_number);
    let log_check = match (&a.event_log, &result) {
        (Some(p), Ok(vq)) => {
            let log = load_event_log(p)?.runtime;
            let replay = log.replay_rtmr3_and_check(&vq.measurements().rtmr[3]).map_err(|e| e.to_string());
            let app = log.app_info().map_err(|e| e.to_string());
            Some((replay, app))
        }
        _ => None,
    };
    let ok = result.is_ok() && log_check.as_ref().is_none_or(|(r, a)| r.is_ok() && a.is_ok());
    if a.json {
        let mut out = serde_json::json!({ "verified": ok, "at": a.at });
        match &result {
            Ok(vq) => {
                let version = Measurements::parse_unverified(&quote)?.0;
                out["quote"] = verified_quote_json(vq, version);
                out["os_reference_id"] = vq.measurements().os_reference_id().to_string().into();
            }
            Err(e) => {
                out["error"] = e.to_string().into();
                out["refusal"] = e.refusal().map(|r| r.name()).into();
            }
        }
        if let Some((replay, app)) = &log_check {
            out["rtmr3_replay"] = match replay {
                Ok(()) => "match".into(),
                Err(e) => e.clone().into(),
            };
            if let Ok(app) = app {
                out["compose_hash"] = hex::encode(app.compose_hash).into();
                out["app_reference_id"] = app_reference_id(&app.compose_hash).to_string().into();
            }
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ok);
    }
    match &result {
        Ok(vq) => {
            println!("verdict:        {}", if ok { "VERIFIED" } else { "NOT VERIFIED (event log)" });
            println!("tcb status:     {}", vq.tcb_status());
            println!(
                "advisories:     {}",
                if vq.advisory_ids().is_empty() { "none".into() } else { vq.advisory_ids().join(", ") }
            );
            println!("tcb evaluation: {} (collateral's tcbEvaluationDataNumber)", vq.tcb_evaluation_data_number());
            println!("simulated:      {}", vq.is_simulated());
            print_measurements(vq.measurements());
        }
        Err(e) => {
            println!("verdict:        REJECTED");
            println!("reason:         {e}");
            println!(
                "refusal code:   {}",
                e.refusal().map_or("none (local problem: retry)".to_string(), |r| r.to_string())
            );
        }
    }
    if let Some((replay, app)) = log_check {
        println!("rtmr3 replay:   {}", replay.map_or_else(|e| e, |_| "matches the quote".into()));
        match app {
            Ok(app) => {
                println!("compose hash:   {}", hex::encode(app.compose_hash));
                println!("app ref id:     {}", app_reference_id(&app.compose_hash));
            }
            Err(e) => println!("app info:       {e}"),
        }
    }
    Ok(ok)
}

fn print_measurements(m: &Measurements) {
    println!("mr_td:          {}", hex::encode(m.mr_td));
    for (i, r) in m.rtmr.iter().enumerate() {
        println!("rtmr{i}:          {}", hex::encode(r));
    }
    println!("mr_config_id:   {}", hex::encode(m.mr_config_id));
    println!("mr_owner:       {}", hex::encode(m.mr_owner));
    println!("mr_owner_cfg:   {}", hex::encode(m.mr_owner_config));
    println!(
        "td_attributes:  {} [{}]",
        hex::encode(m.td_attributes),
        replicatoor_audit::approvals::td_attribute_names(m.td_attributes).join(", ")
    );
    println!("xfam:           {}", hex::encode(m.xfam));
    println!("report_data:    {}", hex::encode(m.report_data));
    println!("os ref id:      {}", m.os_reference_id());
}

/// A verified quote as `--json` shows it (`quote_version`: the quote header's).
fn verified_quote_json(vq: &VerifiedQuote, quote_version: u16) -> serde_json::Value {
    serde_json::json!({
        "measurements": measurements_json(vq.measurements()),
        "tcb_status": vq.tcb_status(),
        "advisory_ids": vq.advisory_ids(),
        "tcb_evaluation_data_number": vq.tcb_evaluation_data_number(),
        "simulated": vq.is_simulated(),
        "quote_version": quote_version,
    })
}

/// A TD's measurements as `--json` shows them: each a hex string, RTMR0-3 a list.
pub(crate) fn measurements_json(m: &Measurements) -> serde_json::Value {
    serde_json::json!({
        "mr_td": hex::encode(m.mr_td),
        "rtmr": m.rtmr.iter().map(hex::encode).collect::<Vec<_>>(),
        "mr_config_id": hex::encode(m.mr_config_id),
        "mr_owner": hex::encode(m.mr_owner),
        "mr_owner_config": hex::encode(m.mr_owner_config),
        "report_data": hex::encode(m.report_data),
        "td_attributes": hex::encode(m.td_attributes),
        "xfam": hex::encode(m.xfam),
    })
}
