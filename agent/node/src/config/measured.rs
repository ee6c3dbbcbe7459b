//! Self-measured configuration: a node on the `dstack` quote provider takes its security-relevant
//! settings from the app compose its own CVM measured, and refuses to start when the operator's flags,
//! environment or file say otherwise.
//!
//! Before anything else, `run` and `config check` ask the guest agent for this CVM's app-compose.json
//! (`Info`) and keep it only if its sha256 is the compose hash in the node's own event log and that log
//! replays to the RTMR3 of the node's own quote ([`crate::provider::QuoteProvider::own_measurement`], checked by [`check_own_compose`]). The
//! agent's service in it is found by the one rule of [`replicatoor_compose::agent`], and each setting is
//! classed by the one table of [`replicatoor_compose::settings`]:
//! - a security setting the compose leaves to the operator (`${VAR}`, passed through, `allowed_envs`,
//!   an `env_file`, a shell command, ...) is an error;
//! - a security setting the operator gives (flag, environment, `--config` file) must equal the compose's
//!   literal value, or its default where the compose does not set it; one the operator does not give
//!   takes the compose's value;
//! - transport and role settings stay the operator's.
//!
//! Errors name the setting; `run` exits 2 on them. The simulated provider (dev and tests) has no
//! measured compose: such a node says loudly that its configuration is not self-measured, and
//! `/status`, `/metrics` and `config check` show it.

use super::{ConfigError, Measurement, ProviderKind, RunArgs, Settings};
use crate::provider::{Attestation, ProviderError, QuoteProvider};
use clap::{Args, FromArgMatches};
use replicatoor_compose::{
    agent::{agent_config, AgentConfig},
    reader::{self, Value},
    settings::{self as table, Class},
};
use replicatoor_core::attest::{eventlog::EventLog, quote::Measurements};
use std::path::PathBuf;

mod say;

/// Why a configuration could not be checked against its measured compose.
#[derive(Debug)]
pub enum MeasureFailure {
    /// No guest agent answers here: not inside a CVM (`config check` on a laptop is then only a warning).
    NoGuestAgent(String),
    /// The configuration is not the measured one, or cannot be read: one error per setting.
    Refused(Vec<ConfigError>),
}

impl From<ConfigError> for MeasureFailure {
    fn from(e: ConfigError) -> Self {
        MeasureFailure::Refused(vec![e])
    }
}

/// The key errors about the compose as a whole are reported under.
const COMPOSE: &str = "measured_compose";

/// The settings to run with, and how they are known to be the approved ones: with the `dstack`
/// provider, the operator's settings with the measured compose applied (the module's rules); with the
/// simulated one, the operator's settings as they are.
pub async fn resolve(args: RunArgs) -> Result<(Settings, Measurement), MeasureFailure> {
    let config_file = args.config.clone();
    let (operator, given) = args.layered_with_sources()?;
    // A release build can neither make nor trust a simulated quote: say so before anything else.
    operator.refuse_unbuilt()?;
    if operator.quote_provider == ProviderKind::Simulated {
        return Ok((operator, Measurement::NotSelfMeasured));
    }
    let provider = QuoteProvider::dstack(operator.dstack_socket.as_ref());
    let cannot_read = |e: ProviderError| invalid(COMPOSE, format!("cannot read this CVM's measured compose: {e}"));
    let own = match provider.own_measurement().await {
        Ok(Some(own)) => own,
        Ok(None) => return Ok((operator, Measurement::NotSelfMeasured)),
        Err(e @ ProviderError::NoGuestAgent { .. }) => return Err(MeasureFailure::NoGuestAgent(e.to_string())),
        Err(e) => return Err(cannot_read(e).into()),
    };
    let compose_hash = check_own_compose(&own.app_compose, &own.attestation).map_err(cannot_read)?;
    // The agent's settings in the measured compose.
    let agent = reader::read(own.app_compose.as_bytes())
        .and_then(|compose| agent_config(&compose))
        .map_err(|e| invalid(COMPOSE, format!("this CVM's measured compose: {e}")))?;
    let settings = apply_to(operator, &given, config_file, &agent).map_err(MeasureFailure::Refused)?;
    if settings.quote_provider != ProviderKind::Dstack {
        return Err(invalid("quote_provider", "the measured compose runs the agent on simulated quotes".into()).into());
    }
    if settings.dstack_socket.as_ref().is_some_and(|p| *p != own.socket) {
        return Err(invalid("dstack_socket", say::other_socket(&own.socket)).into());
    }
    let measurement = Measurement::SelfMeasured { compose_hash, service: agent.service };
    Ok((settings, measurement))
}

/// Apply the measured compose's agent settings (see the module's rules) to the operator's settings:
/// `operator` as flags, environment and `config_file` gave them, `given` the keys they set (the others
/// are defaults).
fn apply_to(
    operator: Settings,
    given: &std::collections::BTreeSet<String>,
    config_file: Option<PathBuf>,
    agent: &AgentConfig,
) -> Result<Settings, Vec<ConfigError>> {
    let mut errors: Vec<ConfigError> = agent.outside.iter().map(|how| invalid(COMPOSE, say::outside(how))).collect();
    // The measured compose's literal security settings, as the arguments clap would see.
    let mut argv = Vec::new();
    let mut measured_config = None;
    for origin in &agent.settings {
        let Some(setting) = table::by_key(origin.setting).filter(|s| s.class == Class::Security) else { continue };
        match &origin.value {
            Value::Operator { source } => errors.push(invalid(setting.key, say::left_to_operator(origin, source))),
            Value::Literal { value } if setting.key == "config" => measured_config = Some(PathBuf::from(value)),
            Value::Literal { value } if setting.switch => match value.as_str() {
                "true" => argv.push(format!("--{}", setting.flag)),
                "false" => {}
                other => errors.push(invalid(setting.key, say::not_a_switch(origin, other))),
            },
            Value::Literal { value } => argv.push(format!("--{}={value}", setting.flag)),
        }
    }
    if config_file != measured_config {
        errors.push(invalid("config", say::config_file(measured_config.as_deref())));
    }
    let measured = Settings::augment_args(clap::Command::new("measured").no_binary_name(true))
        .mut_args(|a| a.env(None::<&str>))
        .args_override_self(true)
        .try_get_matches_from(&argv)
        .and_then(|m| Settings::from_arg_matches(&m));
    let measured = match measured {
        Ok(m) => m,
        Err(e) => {
            errors.push(invalid(COMPOSE, say::does_not_parse(&e)));
            return Err(errors);
        }
    };
    let (Ok(mut merged), Ok(measured)) = (toml::Table::try_from(&operator), toml::Table::try_from(&measured)) else {
        errors.push(invalid(COMPOSE, "the settings cannot be compared".into()));
        return Err(errors);
    };
    for key in table::SETTINGS.iter().filter(|s| s.class == Class::Security).map(|s| s.key) {
        let (mine, theirs) = (merged.get(key).cloned(), measured.get(key).cloned());
        if mine == theirs || key == "config" {
            continue;
        }
        if given.contains(key) {
            errors.push(invalid(key, say::differs(mine.as_ref(), theirs.as_ref(), agent.get(key))));
        } else if let Some(v) = theirs {
            merged.insert(key.to_string(), v);
        } else {
            merged.remove(key);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    merged.try_into().map_err(|e: toml::de::Error| vec![invalid(COMPOSE, e.to_string())])
}

/// Check that `app_compose` is what `att` measured: its event log replays to the quote's RTMR3, and the
/// log's compose-hash event is sha256 of the document's bytes. Returns that hash.
///
/// Only the kernel's decoder, replay and claim rules read the log here, from its compact form: every
/// digest is recomputed from the events' names and payloads, so whatever reads Dstack's JSON log into
/// that form (`replicatoor_encode::eventlog::from_dstack_json`, then `to_compact`) is transport. A log
/// it misread (an event dropped, moved, relabelled or changed) does not replay to RTMR3 short of a
/// SHA-384 collision, and is refused (`measured/tests.rs`, `a_tampered_json_event_log_is_refused_by_the_replay`).
pub fn check_own_compose(app_compose: &str, att: &Attestation) -> Result<[u8; 32], ProviderError> {
    use sha2::{Digest, Sha256};
    let bad = |why: String| ProviderError::BadResponse(format!("own measurement: {why}"));
    let quoted = Measurements::parse_unverified(&att.quote)
        .map_err(|e| bad(format!("quote: {e}")))?
        .2
        .ok_or_else(|| bad("the quote is not a TDX quote".into()))?;
    let log = EventLog::from_compact(&att.event_log).map_err(|e| bad(format!("event log: {e}")))?;
    log.replay_rtmr3_and_check(&quoted.rtmr[3]).map_err(|e| bad(format!("event log does not replay to RTMR3: {e}")))?;
    let logged = log.app_info().map_err(|e| bad(format!("event log: {e}")))?.compose_hash;
    let hash: [u8; 32] = Sha256::digest(app_compose.as_bytes()).into();
    if logged != hash {
        return Err(bad(format!(
            "Info's app_compose hashes to {}, but this CVM measured compose hash {}",
            hex::encode(hash),
            hex::encode(logged)
        )));
    }
    Ok(hash)
}

fn invalid(key: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { key, reason }
}

#[cfg(test)]
mod tests;
