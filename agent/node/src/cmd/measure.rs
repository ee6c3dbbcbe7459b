//! `replicatoor measure`: measurements and reference ids from a compose file, a quote or an event log.

use crate::args::{load_event_log, read_bytes, sha256_file};
use replicatoor_audit::{compose, describe};
use replicatoor_core::{attest::quote::Measurements, protocol::app_reference_id};
use std::{path::PathBuf, process::ExitCode};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// app-compose.json: print its compose hash and app reference id.
    #[arg(long)]
    pub compose: Option<PathBuf>,
    /// Quote: print its measurements and OS reference id (not verified; use verify-quote).
    #[arg(long)]
    pub quote: Option<PathBuf>,
    /// Event log: replay RTMR0-3 and list the runtime events (the OS image hash and key provider among them).
    #[arg(long)]
    pub event_log: Option<PathBuf>,
    /// The simulated OS measurements.
    #[arg(long)]
    pub simulated_os: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut out = serde_json::Map::new();
    if let Some(p) = &a.compose {
        measure_compose(p, &mut out)?;
    }
    if a.simulated_os {
        let [mrtd, r0, r1, r2] = crate::simulated::os_measurements()?;
        let id = replicatoor_core::protocol::os_reference_id(&mrtd, &r0, &r1, &r2);
        out.insert("simulated_os_reference_id".into(), id.to_string().into());
    }
    if let Some(p) = &a.quote {
        let (version, tee, m) = Measurements::parse_unverified(&read_bytes(p)?).map_err(|e| anyhow::anyhow!(e))?;
        out.insert("quote_version".into(), version.into());
        out.insert("tee_type".into(), format!("{tee:#x}").into());
        if let Some(m) = m {
            out.insert("os_reference_id".into(), m.os_reference_id().to_string().into());
            out.insert("measurements".into(), super::verify_quote::measurements_json(&m));
        }
    }
    if let Some(p) = &a.event_log {
        measure_event_log(p, a.json, &mut out)?;
    }
    if out.is_empty() {
        anyhow::bail!("nothing to measure: pass --compose, --quote, --event-log or --simulated-os");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_text(&out);
    }
    Ok(ExitCode::SUCCESS)
}

/// What a compose fixes: its hash and app reference, its pin and trust parameters, the agent's service
/// and where each of its settings comes from.
fn measure_compose(p: &std::path::Path, out: &mut serde_json::Map<String, serde_json::Value>) -> anyhow::Result<()> {
    let h = sha256_file(p)?;
    out.insert("compose_hash".into(), hex::encode(h).into());
    out.insert("app_reference_id".into(), app_reference_id(&h).to_string().into());
    let raw = std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?;
    let report = compose::check(&raw)?;
    out.insert("trust_mode".into(), report.trust_mode().into());
    out.insert(
        "pinned_deployment".into(),
        match &report.pinned_deployment {
            Some(d) => {
                format!("chain {} contract {} start block {}: {}", d.chain_id, d.contract, d.start_block, d.trust)
            }
            None => match &report.pin_error {
                Some(e) => format!("INVALID: its nodes refuse to start on it: {e}"),
                None => "NOT PINNED: nodes running this compose trust their RPC's view of the chain".into(),
            },
        }
        .into(),
    );
    let params: Vec<String> =
        report.trust_parameters.iter().map(|p| format!("{} = {} (bound {})", p.name, p.value, p.bound)).collect();
    out.insert("trust_parameters".into(), params.into());
    out.insert(
        "agent_service".into(),
        report.agent_services.first().map_or("none: no service runs the replicatoor agent", String::as_str).into(),
    );
    out.insert(
        "self_measured_configuration".into(),
        if report.agent_services.is_empty() {
            "no agent service"
        } else if report.self_measured {
            "yes: its nodes take their security settings from this compose and refuse others"
        } else {
            "NO: its agent runs on simulated quotes (dev/test only)"
        }
        .into(),
    );
    let unmeasured: Vec<String> =
        report.unmeasured.iter().map(|u| format!("{}: {} ({})", u.service, u.setting, u.source)).collect();
    out.insert("unmeasured_security_settings".into(), unmeasured.into());
    out.insert("images_by_tag".into(), report.images_by_tag.clone().into());
    out.insert("measured_settings".into(), report.measured.clone().into());
    out.insert("operator_provided_settings".into(), report.operator_provided.clone().into());
    Ok(())
}

/// What an event log replays to, and the runtime events it carries (in words unless `json`).
fn measure_event_log(
    p: &std::path::Path,
    json: bool,
    out: &mut serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<()> {
    let log = load_event_log(p)?;
    let rtmrs = log.replay_all();
    out.insert("replayed_rtmrs".into(), rtmrs.iter().map(hex::encode).collect::<Vec<_>>().into());
    let log = log.runtime;
    let events: Vec<_> = log.events().iter().map(|e| describe::runtime_event(e.name(), e.payload())).collect();
    out.insert(
        "runtime_events".into(),
        if json {
            serde_json::to_value(&events)?
        } else {
            events
                .iter()
                .map(|e| match e.value.as_str() {
                    "" => format!("{} ({})", e.name, e.meaning),
                    v => format!("{}: {v} ({})", e.name, e.meaning),
                })
                .collect::<Vec<_>>()
                .into()
        },
    );
    if let Ok(app) = log.app_info() {
        out.insert("compose_hash".into(), hex::encode(app.compose_hash).into());
        out.insert("app_reference_id".into(), app_reference_id(&app.compose_hash).to_string().into());
        let not_logged = || serde_json::Value::from("not logged");
        out.insert("os_image_hash".into(), app.os_image_hash.map_or_else(not_logged, |h| hex::encode(h).into()));
        out.insert(
            "key_provider".into(),
            app.key_provider.map_or_else(not_logged, |k| describe::runtime_event("key-provider", &k).value.into()),
        );
    }
    Ok(())
}

/// `key: value` lines, a list as `key:` and indented items (`none` when empty).
fn print_text(out: &serde_json::Map<String, serde_json::Value>) {
    for (k, v) in out {
        match v {
            serde_json::Value::Array(items) if items.is_empty() => println!("{k}: none"),
            serde_json::Value::Array(items) => {
                println!("{k}:");
                for i in items {
                    println!("  - {}", i.as_str().map_or_else(|| i.to_string(), str::to_string));
                }
            }
            _ => println!("{k}: {}", v.as_str().map_or_else(|| v.to_string(), str::to_string)),
        }
    }
}
