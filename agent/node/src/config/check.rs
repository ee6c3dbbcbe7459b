//! `replicatoor config check`: validate a `run` configuration exactly as `run` does, then check what can
//! be checked without the chain. Local problems are warnings: the check may run elsewhere than the node.

use super::{
    measured::{self, MeasureFailure},
    ConfigError, Measurement, ProviderKind, RunArgs, RunConfig,
};
use replicatoor_chain::endpoint::{transport, Transport};
use std::path::Path;

/// How much a [`check`] finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `run` would refuse this configuration (exit code 2).
    Error,
    /// `run` accepts it, but it will probably fail or be unsafe once running.
    Warning,
}

/// One problem found by [`check`], and what to do about it.
#[derive(Debug, Clone)]
pub struct Problem {
    pub level: Level,
    /// The setting concerned (its TOML key).
    pub key: &'static str,
    pub problem: String,
    pub fix: String,
}

impl ConfigError {
    /// The setting at fault (its TOML key); `config` for a broken file.
    pub fn key(&self) -> &'static str {
        match self {
            ConfigError::File { .. } => "config",
            ConfigError::Missing(key, ..) | ConfigError::Invalid { key, .. } => key,
        }
    }

    /// What the operator should do about it.
    pub fn fix(&self) -> String {
        match self {
            ConfigError::File { .. } => {
                "fix the TOML file: keys are the long flag names with underscores, unknown keys are \
                                         rejected (see examples/replicatoor.toml)"
                    .into()
            }
            ConfigError::Missing(key, flag, env) => format!("set --{flag}, or {env}, or `{key}` in the config file"),
            ConfigError::Invalid { key, .. } => match *key {
                "rpc_url" => "use an https:// endpoint (plain http:// only for a node on this machine); \
                              --allow-insecure-rpc lets a network attacker feed this node a fake chain"
                    .into(),
                "contract" => "the UpgradeOperator address, 0x and 40 hex digits (REPLICATOOR_CONTRACT printed by \
                               script/Deploy.s.sol)"
                    .into(),
                "sender_key" => "a 32-byte hex private key of a funded account; pass it by environment \
                                 (REPLICATOOR_SENDER_KEY), not in a file"
                    .into(),
                "generate_secret" => format!(
                    "use it only together with --genesis (founding node), with 1..={} bytes",
                    replicatoor_core::crypto::bundle::MAX_SECRET_FILE
                ),
                "http_addr" => "an IP socket address such as 127.0.0.1:9090 or 0.0.0.0:9090, or `off`".into(),
                "witness_rpc_urls" => "independent https:// endpoints (other providers than rpc_url)".into(),
                "pccs_url" => "an https:// PCCS base URL, or `off` (then set collateral_dir)".into(),
                "deployment" => "pin the deployment literally in the app's compose (docs/deploy.md, \"Pinning the \
                                 deployment\"); for a dev chain `replicatoor dev beacon` writes one. \
                                 --dangerously-trust-rpc runs on the RPC's unverified view (dev/test only)"
                    .into(),
                "dangerously_trust_rpc" => "with a pinned deployment, remove dangerously_trust_rpc".into(),
                "measured_compose" => "write every security setting literally in the agent's service of the app's \
                                       compose (docs/operations.md, \"What the operator may set\"); transport settings \
                                       (URLs, sender key, HTTP address, logs) may come from the operator"
                    .into(),
                _ => "see `replicatoor run --help`".into(),
            },
        }
    }
}

/// Validate a configuration exactly as `run` does ([`RunArgs::resolve`]), then check what can be checked
/// without the chain: the secret file's directory is writable, the state directory can be created, the
/// app-compose file is readable (simulated provider), the guest-agent socket exists (Dstack provider).
/// Those local checks are warnings: `config check` may run elsewhere than the node (CI, an operator's laptop).
/// Returns the resolved configuration when there is no error, and every finding.
pub async fn check(args: RunArgs) -> (Option<RunConfig>, Vec<Problem>) {
    let error = |e: ConfigError| Problem { level: Level::Error, key: e.key(), problem: e.to_string(), fix: e.fix() };
    let mut out = Vec::new();
    // As `run` does: with the dstack provider, against the compose this CVM measured. Off the node (CI, a
    // laptop) there is no guest agent to ask: say so, and check the rest.
    let (settings, measurement) = match measured::resolve(args.clone()).await {
        Ok(r) => r,
        Err(MeasureFailure::Refused(errors)) => return (None, errors.into_iter().map(error).collect()),
        Err(MeasureFailure::NoGuestAgent(why)) => match args.layered() {
            Ok(s) => {
                out.push(Problem {
                    level: Level::Warning,
                    key: "measured_compose",
                    problem: format!("not checked against a measured compose (no guest agent: {why})"),
                    fix: "run `replicatoor config check` inside the CVM, where `run` checks it before starting".into(),
                });
                (s, Measurement::NotSelfMeasured)
            }
            Err(e) => return (None, vec![error(e)]),
        },
    };
    let cfg = match settings.validate() {
        Ok(c) => RunConfig { measurement, ..c },
        Err(e) => return (None, vec![error(e)]),
    };
    let mut warn = |key: &'static str, problem: String, fix: &str| {
        out.push(Problem { level: Level::Warning, key, problem, fix: fix.into() })
    };
    file_warnings(&cfg, &mut warn);
    setting_warnings(&cfg, &mut warn);
    (Some(cfg), out)
}

/// How the checks below report a warning: the setting, what is wrong, how to fix it.
type Warn<'a> = dyn FnMut(&'static str, String, &str) + 'a;

/// Where the node writes: the secret file (and, on a genesis node, the secret it reads) and the state
/// directory.
fn file_warnings(cfg: &RunConfig, warn: &mut Warn<'_>) {
    if cfg.secret_file.is_dir() {
        warn(
            "secret_file",
            format!("{} is a directory", cfg.secret_file.display()),
            "point secret_file at a file path (it is installed atomically next to itself)",
        );
    } else if let Err(e) = dir_creatable(cfg.secret_file.parent().unwrap_or(Path::new("."))) {
        warn(
            "secret_file",
            format!("cannot install {}: {e}", cfg.secret_file.display()),
            "make its directory writable by this user (in a container: the volume shared with the app)",
        );
    }
    if cfg.genesis && cfg.generate_secret.is_none() {
        if let Err(e) = std::fs::File::open(&cfg.secret_file) {
            warn(
                "secret_file",
                format!("genesis reads the secret from {}: {e}", cfg.secret_file.display()),
                "put the secret there before starting, or pass --generate-secret BYTES",
            );
        }
    }

    if let Err(e) = dir_creatable(&cfg.state_dir) {
        warn(
            "state_dir",
            format!("cannot use {} as the state directory: {e}", cfg.state_dir.display()),
            "make it writable by this user; in a container, mount a persistent volume there",
        );
    }
}

/// Settings a node accepts that are unsafe outside development, or that will not work as meant.
fn setting_warnings(cfg: &RunConfig, warn: &mut Warn<'_>) {
    match cfg.quote_provider {
        ProviderKind::Simulated => {
            if let Some(p) = &cfg.app_compose {
                if let Err(e) = std::fs::read(p) {
                    warn(
                        "app_compose",
                        format!("cannot read {}: {e}", p.display()),
                        "point app_compose at the app-compose.json whose sha256 is the app's compose hash",
                    );
                }
            }
            warn(
                "quote_provider",
                "simulated quotes prove nothing (public test PKI)".into(),
                "use `dstack` on a real node; simulated is for local development and tests only",
            );
        }
        ProviderKind::Dstack => {
            // A missing guest agent was reported by the measured-configuration step above.
            if cfg.collateral_dir.is_none() && cfg.pccs_url.is_none() {
                warn(
                    "collateral_dir",
                    "no collateral: as a holder this node cannot verify genuine quotes (requests stay pending)".into(),
                    "set pccs_url (or leave it unset for the default PCCS), or collateral_dir to a directory of \
                     <fmspc>.json collateral files (dcap-qvl format)",
                );
            }
        }
    }
    if let Some(d) = &cfg.collateral_dir {
        if !d.is_dir() {
            warn("collateral_dir", format!("{} is not a directory", d.display()), "create it or fix the path");
        }
    }
    if cfg.deployment.is_none() {
        warn(
            "dangerously_trust_rpc",
            "no pinned deployment: this node would release and install on whatever its RPC says".into(),
            "never in production: pin the deployment (docs/deploy.md)",
        );
    }
    if cfg.allow_simulated_quotes {
        warn(
            "allow_simulated_quotes",
            "this holder would serve SIMULATED quotes when the contract policy allows them".into(),
            "never in production: remove allow_simulated_quotes",
        );
    }
    let rpc = transport(&cfg.rpc_url);
    let local = rpc == Ok(Transport::LoopbackHttp);
    if rpc == Ok(Transport::RemoteHttp) {
        warn(
            "allow_insecure_rpc",
            "plain http:// to a remote RPC: anyone on the path can feed this node a fake chain".into(),
            "use an https:// endpoint",
        );
    }
    if !local && cfg.start_block == 0 {
        warn(
            "start_block",
            "start_block is 0: the first scan walks the whole chain".into(),
            "set start_block to the contract's deployment block (REPLICATOOR_START_BLOCK printed by the deploy)",
        );
    }
    if cfg.confirmations == 0 {
        warn(
            "confirmations",
            "0 confirmations: a holder answers requests that a reorg may remove".into(),
            "use at least 2 (more on chains with deep reorgs, see docs/operations.md)",
        );
    }
}

/// Whether `dir` exists as a writable directory, or could be created (its nearest existing ancestor is a
/// writable directory). Writability is probed by creating and removing a file: the only portable test.
fn dir_creatable(dir: &Path) -> Result<(), String> {
    let existing = dir
        .ancestors()
        .map(|a| if a.as_os_str().is_empty() { Path::new(".") } else { a })
        .find(|a| a.exists())
        .unwrap_or(Path::new("."));
    if !existing.is_dir() {
        return Err(format!("{} is not a directory", existing.display()));
    }
    let probe = existing.join(format!(".replicatoor-config-check-{}", std::process::id()));
    let made = std::fs::OpenOptions::new().write(true).create_new(true).open(&probe);
    made.and_then(|_| std::fs::remove_file(&probe)).map_err(|e| format!("{} is not writable: {e}", existing.display()))
}
