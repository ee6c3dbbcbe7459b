//! Configuration of `replicatoor run`: flags, environment variables (`REPLICATOOR_*`) and a TOML
//! file, in that order of precedence. Security-relevant switches default to strict.

use clap::{Args, ValueEnum};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where this node's own quote comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// The Dstack guest agent (production).
    Dstack,
    /// SIMULATED quotes (dev/test only; holders refuse them unless policy and flag allow).
    Simulated,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Flags of `replicatoor run` (each also settable by env var and by the `--config` TOML file).
#[derive(Debug, Clone, Args, Default)]
pub struct RunArgs {
    /// TOML configuration file (same keys as the long flags, with underscores).
    #[arg(long, env = "REPLICATOOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// JSON-RPC endpoint (https:// outside local development).
    #[arg(long, env = "REPLICATOOR_RPC_URL")]
    pub rpc_url: Option<String>,
    /// Independent RPC endpoints that must agree with --rpc-url on the block hash and contract state a
    /// delivery is based on (repeat the flag, or comma-separate in the env var). A lying RPC alone then
    /// cannot make a holder release the secret.
    #[arg(long = "witness-rpc-url", env = "REPLICATOOR_WITNESS_RPC_URLS", value_delimiter = ',')]
    pub witness_rpc_urls: Vec<String>,
    /// UpgradeOperator contract address.
    #[arg(long, env = "REPLICATOOR_CONTRACT")]
    pub contract: Option<String>,
    /// First block to scan for requests (the contract's deployment block).
    #[arg(long, env = "REPLICATOOR_START_BLOCK")]
    pub start_block: Option<u64>,
    /// Directory of the agent's durable state (keys, checkpoint, outcomes).
    #[arg(long, env = "REPLICATOOR_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Path of the app's secret file (read at genesis, installed on new nodes).
    #[arg(long, env = "REPLICATOOR_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// Private key (hex) of the funded account that pays for this node's transactions.
    #[arg(long, env = "REPLICATOOR_SENDER_KEY", hide_env_values = true)]
    pub sender_key: Option<String>,
    /// Found a new cluster (first node only): create the cluster key and propose genesis.
    #[arg(long, env = "REPLICATOOR_GENESIS")]
    pub genesis: bool,
    /// With --genesis: generate a random secret file of this many bytes instead of reading one.
    #[arg(long, env = "REPLICATOOR_GENERATE_SECRET")]
    pub generate_secret: Option<usize>,
    /// Quote source: `dstack` (production) or `simulated` (dev/test).
    #[arg(long, value_enum, env = "REPLICATOOR_QUOTE_PROVIDER")]
    pub quote_provider: Option<ProviderKind>,
    /// Guest-agent socket (default /var/run/dstack.sock, then /var/run/tappd.sock).
    #[arg(long, env = "REPLICATOOR_DSTACK_SOCKET")]
    pub dstack_socket: Option<PathBuf>,
    /// Simulated provider: the app-compose file whose sha256 is the compose hash.
    #[arg(long, env = "REPLICATOOR_APP_COMPOSE")]
    pub app_compose: Option<PathBuf>,
    /// Trust quotes from the simulated PKI. Gives up all hardware guarantees: local development only.
    /// The contract's policy must allow simulated quotes as well.
    #[arg(long, env = "REPLICATOOR_ALLOW_SIMULATED_QUOTES")]
    pub allow_simulated_quotes: bool,
    /// Directory of collateral files `<fmspc>.json` for genuine quotes (offline; no PCCS fetches).
    #[arg(long, env = "REPLICATOOR_COLLATERAL_DIR")]
    pub collateral_dir: Option<PathBuf>,
    /// PCCS to fetch collateral from (cached per FMSPC under the state dir); `off` to disable.
    /// Default: Phala's public PCCS. Intel PCS: https://api.trustedservices.intel.com
    #[arg(long, env = "REPLICATOOR_PCCS_URL")]
    pub pccs_url: Option<String>,
    /// Blocks a request must be buried under before a holder acts (default 2).
    #[arg(long, env = "REPLICATOOR_CONFIRMATIONS")]
    pub confirmations: Option<u64>,
    /// How often to poll the chain, in milliseconds (default 1000).
    #[arg(long, env = "REPLICATOOR_POLL_INTERVAL_MS")]
    pub poll_interval_ms: Option<u64>,
    /// Upper bound of the random delay before answering, so racing holders rarely both send (default 400).
    #[arg(long, env = "REPLICATOOR_JITTER_MS")]
    pub jitter_ms: Option<u64>,
    /// Most refusals a holder posts per scanned block range (a junk flood costs the holder gas).
    #[arg(long, env = "REPLICATOOR_MAX_REFUSALS_PER_STEP")]
    pub max_refusals_per_step: Option<u32>,
    /// New node: exit after installing the secret instead of serving as a holder.
    #[arg(long, env = "REPLICATOOR_EXIT_AFTER_INSTALL")]
    pub exit_after_install: bool,
    /// Allow plain http:// RPC URLs to non-local hosts (insecure).
    #[arg(long, env = "REPLICATOOR_ALLOW_INSECURE_RPC")]
    pub allow_insecure_rpc: bool,
    /// Health and metrics endpoint (/healthz, /readyz, /status, /metrics); `off` to disable (default 127.0.0.1:9090).
    #[arg(long, env = "REPLICATOOR_HTTP_ADDR")]
    pub http_addr: Option<String>,
}

/// The TOML file: the same keys as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    rpc_url: Option<String>,
    witness_rpc_urls: Option<Vec<String>>,
    contract: Option<String>,
    start_block: Option<u64>,
    state_dir: Option<PathBuf>,
    secret_file: Option<PathBuf>,
    sender_key: Option<String>,
    genesis: Option<bool>,
    generate_secret: Option<usize>,
    quote_provider: Option<ProviderKind>,
    dstack_socket: Option<PathBuf>,
    app_compose: Option<PathBuf>,
    allow_simulated_quotes: Option<bool>,
    collateral_dir: Option<PathBuf>,
    pccs_url: Option<String>,
    confirmations: Option<u64>,
    poll_interval_ms: Option<u64>,
    jitter_ms: Option<u64>,
    max_refusals_per_step: Option<u32>,
    exit_after_install: Option<bool>,
    allow_insecure_rpc: Option<bool>,
    http_addr: Option<String>,
}

/// A resolved, validated configuration.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub rpc_url: String,
    pub witness_rpc_urls: Vec<String>,
    pub contract: alloy::primitives::Address,
    pub start_block: u64,
    pub state_dir: PathBuf,
    pub secret_file: PathBuf,
    pub sender_key: alloy::signers::local::PrivateKeySigner,
    pub genesis: bool,
    pub generate_secret: Option<usize>,
    pub quote_provider: ProviderKind,
    pub dstack_socket: Option<PathBuf>,
    pub app_compose: Option<PathBuf>,
    pub allow_simulated_quotes: bool,
    pub collateral_dir: Option<PathBuf>,
    /// PCCS base URL (None = no fetching).
    pub pccs_url: Option<String>,
    pub confirmations: u64,
    pub poll_interval_ms: u64,
    pub jitter_ms: u64,
    pub max_refusals_per_step: u32,
    pub exit_after_install: bool,
    /// Where to serve health and metrics (None = off).
    pub http_addr: Option<std::net::SocketAddr>,
}

/// Configuration problems, each saying what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("missing setting `{0}` (flag --{1}, env {2}, or `{0}` in the config file)")]
    Missing(&'static str, &'static str, &'static str),
    #[error("setting `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl RunArgs {
    /// Merge flags/env with the config file and validate.
    pub fn resolve(self) -> Result<RunConfig, ConfigError> {
        let file = match &self.config {
            Some(p) => load_file(p)?,
            None => FileConfig::default(),
        };
        let rpc_url =
            self.rpc_url.or(file.rpc_url).ok_or(ConfigError::Missing("rpc_url", "rpc-url", "REPLICATOOR_RPC_URL"))?;
        check_rpc_url(&rpc_url, self.allow_insecure_rpc || file.allow_insecure_rpc.unwrap_or(false))?;
        let contract = self.contract.or(file.contract).ok_or(ConfigError::Missing(
            "contract",
            "contract",
            "REPLICATOOR_CONTRACT",
        ))?;
        let contract =
            contract.parse().map_err(|e| ConfigError::Invalid { key: "contract", reason: format!("{e}") })?;
        let sender = zeroize::Zeroizing::new(self.sender_key.or(file.sender_key).ok_or(ConfigError::Missing(
            "sender_key",
            "sender-key",
            "REPLICATOOR_SENDER_KEY",
        ))?);
        let sender_key = sender
            .trim()
            .parse()
            .map_err(|_| ConfigError::Invalid { key: "sender_key", reason: "not a 32-byte hex private key".into() })?;
        let quote_provider = self.quote_provider.or(file.quote_provider).unwrap_or(ProviderKind::Dstack);
        let genesis = self.genesis || file.genesis.unwrap_or(false);
        let generate_secret = self.generate_secret.or(file.generate_secret);
        if generate_secret.is_some() && !genesis {
            return Err(ConfigError::Invalid {
                key: "generate_secret",
                reason: "only meaningful with --genesis".into(),
            });
        }
        if let Some(n) = generate_secret {
            if n == 0 || n > replicatoor_core::crypto::bundle::MAX_SECRET_FILE {
                return Err(ConfigError::Invalid {
                    key: "generate_secret",
                    reason: format!("must be 1..={} bytes", replicatoor_core::crypto::bundle::MAX_SECRET_FILE),
                });
            }
        }
        let http_addr = match self.http_addr.or(file.http_addr).as_deref() {
            Some("off") => None,
            Some(a) => {
                Some(a.parse().map_err(|e| ConfigError::Invalid { key: "http_addr", reason: format!("{a:?}: {e}") })?)
            }
            None => Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9090))),
        };
        let app_compose = self.app_compose.or(file.app_compose);
        if quote_provider == ProviderKind::Simulated && app_compose.is_none() {
            return Err(ConfigError::Missing("app_compose", "app-compose", "REPLICATOOR_APP_COMPOSE"));
        }
        let allow_insecure = self.allow_insecure_rpc || file.allow_insecure_rpc.unwrap_or(false);
        let witness_rpc_urls = if self.witness_rpc_urls.is_empty() {
            file.witness_rpc_urls.unwrap_or_default()
        } else {
            self.witness_rpc_urls
        };
        for w in &witness_rpc_urls {
            check_rpc_url(w, allow_insecure)?;
            if *w == rpc_url {
                return Err(ConfigError::Invalid {
                    key: "witness_rpc_urls",
                    reason: "a witness must differ from rpc_url".into(),
                });
            }
        }
        Ok(RunConfig {
            rpc_url,
            witness_rpc_urls,
            contract,
            start_block: self.start_block.or(file.start_block).unwrap_or(0),
            state_dir: self.state_dir.or(file.state_dir).ok_or(ConfigError::Missing(
                "state_dir",
                "state-dir",
                "REPLICATOOR_STATE_DIR",
            ))?,
            secret_file: self.secret_file.or(file.secret_file).ok_or(ConfigError::Missing(
                "secret_file",
                "secret-file",
                "REPLICATOOR_SECRET_FILE",
            ))?,
            sender_key,
            genesis,
            generate_secret,
            quote_provider,
            dstack_socket: self.dstack_socket.or(file.dstack_socket),
            app_compose,
            allow_simulated_quotes: self.allow_simulated_quotes || file.allow_simulated_quotes.unwrap_or(false),
            collateral_dir: self.collateral_dir.or(file.collateral_dir),
            pccs_url: match self.pccs_url.or(file.pccs_url).as_deref() {
                Some("off") => None,
                Some(u)
                    if u.starts_with("https://")
                        || u.starts_with("http://127.")
                        || u.starts_with("http://localhost") =>
                {
                    Some(u.trim_end_matches('/').to_string())
                }
                Some(u) => {
                    return Err(ConfigError::Invalid {
                        key: "pccs_url",
                        reason: format!("{u:?} must be https:// (or off)"),
                    })
                }
                None => Some(dcap_qvl::collateral::PHALA_PCCS_URL.to_string()),
            },
            confirmations: self.confirmations.or(file.confirmations).unwrap_or(2),
            poll_interval_ms: self.poll_interval_ms.or(file.poll_interval_ms).unwrap_or(1000).max(50),
            jitter_ms: self.jitter_ms.or(file.jitter_ms).unwrap_or(400),
            max_refusals_per_step: self.max_refusals_per_step.or(file.max_refusals_per_step).unwrap_or(16),
            exit_after_install: self.exit_after_install || file.exit_after_install.unwrap_or(false),
            http_addr,
        })
    }
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let err = |reason: String| ConfigError::File { path: path.display().to_string(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    toml::from_str(&text).map_err(|e| err(e.to_string()))
}

/// Plain http is only for loopback (local dev); elsewhere a MITM could feed us a fake chain.
pub fn check_rpc_url(url: &str, allow_insecure: bool) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid { key: "rpc_url", reason: reason.into() };
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(invalid("must start with https:// (or http:// for a local node)"));
    };
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    if allow_insecure || matches!(host, "localhost" | "127.0.0.1" | "[") || host.starts_with("127.") {
        return Ok(());
    }
    Err(invalid("plain http:// is only allowed for localhost; use https:// or --allow-insecure-rpc"))
}

// ------------------------------------------------------------------ `replicatoor config check`

/// How much a [`check`] finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// `run` would refuse this configuration (exit code 2).
    Error,
    /// `run` accepts it, but it will probably fail or be unsafe once running.
    Warning,
}

/// One problem found by [`check`], and what to do about it.
#[derive(Debug, Clone)]
pub struct Finding {
    pub severity: Severity,
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
pub fn check(args: RunArgs) -> (Option<RunConfig>, Vec<Finding>) {
    let cfg = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            let f = Finding { severity: Severity::Error, key: e.key(), problem: e.to_string(), fix: e.fix() };
            return (None, vec![f]);
        }
    };
    let mut out = Vec::new();
    let mut warn = |key: &'static str, problem: String, fix: &str| {
        out.push(Finding { severity: Severity::Warning, key, problem, fix: fix.into() })
    };

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
            let candidates: Vec<PathBuf> = match &cfg.dstack_socket {
                Some(p) => vec![p.clone()],
                None => {
                    vec![crate::provider::DSTACK_SOCKET.into(), crate::provider::TAPPD_SOCKET.into()]
                }
            };
            if !candidates.iter().any(|p| is_socket(p)) {
                let list: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
                warn(
                    "dstack_socket",
                    format!("no Dstack guest-agent socket at {}", list.join(" or ")),
                    "run inside a Dstack CVM and mount /var/run/dstack.sock into this container \
                     (or set dstack_socket); for local development use quote_provider = \"simulated\"",
                );
            }
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
    if cfg.allow_simulated_quotes {
        warn(
            "allow_simulated_quotes",
            "this holder would serve SIMULATED quotes when the contract policy allows them".into(),
            "never in production: remove allow_simulated_quotes",
        );
    }
    let local = is_local_rpc(&cfg.rpc_url);
    if !local && cfg.rpc_url.starts_with("http://") {
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
    (Some(cfg), out)
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

fn is_socket(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata(p).map(|m| m.file_type().is_socket()).unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        p.exists()
    }
}

fn is_local_rpc(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    host == "localhost" || host.starts_with("127.") || rest.starts_with("[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RunArgs {
        RunArgs {
            rpc_url: Some("http://127.0.0.1:8545".into()),
            contract: Some("0x5FbDB2315678afecb367f032d93F642f64180aa3".into()),
            state_dir: Some("/tmp/x".into()),
            secret_file: Some("/tmp/x/secret".into()),
            sender_key: Some("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80".into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_strict() {
        let c = base().resolve().unwrap();
        assert_eq!(c.quote_provider, ProviderKind::Dstack);
        assert!(!c.allow_simulated_quotes);
        assert_eq!(c.confirmations, 2);
        assert_eq!(c.pccs_url.as_deref(), Some(dcap_qvl::collateral::PHALA_PCCS_URL));
        assert_eq!(c.http_addr, Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9090))));
    }

    #[test]
    fn rejects_insecure_remote_rpc_and_bad_values() {
        let mut a = base();
        a.rpc_url = Some("http://rpc.example.com".into());
        assert!(matches!(a.resolve(), Err(ConfigError::Invalid { key: "rpc_url", .. })));
        let mut a = base();
        a.sender_key = Some("nope".into());
        assert!(matches!(a.resolve(), Err(ConfigError::Invalid { key: "sender_key", .. })));
        let mut a = base();
        a.generate_secret = Some(10);
        assert!(matches!(a.resolve(), Err(ConfigError::Invalid { key: "generate_secret", .. })));
        let mut a = base();
        a.quote_provider = Some(ProviderKind::Simulated);
        assert!(matches!(a.resolve(), Err(ConfigError::Missing("app_compose", ..))));
        let mut a = base();
        a.rpc_url = None;
        assert!(matches!(a.resolve(), Err(ConfigError::Missing("rpc_url", ..))));
        let mut a = base();
        a.pccs_url = Some("http://pccs.example.com".into());
        assert!(matches!(a.resolve(), Err(ConfigError::Invalid { key: "pccs_url", .. })));
        let mut a = base();
        a.http_addr = Some("not-an-addr".into());
        assert!(matches!(a.resolve(), Err(ConfigError::Invalid { key: "http_addr", .. })));
    }

    #[test]
    fn file_fills_what_flags_leave_out() {
        let dir = std::env::temp_dir().join(format!("replicatoor-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.toml");
        std::fs::write(&p, "confirmations = 5\njitter_ms = 7\nrpc_url = \"https://rpc.example.com\"\n").unwrap();
        let mut a = base();
        a.config = Some(p.clone());
        a.jitter_ms = Some(9);
        let c = a.clone().resolve().unwrap();
        assert_eq!(c.confirmations, 5);
        assert_eq!(c.jitter_ms, 9, "flag beats file");
        assert_eq!(c.rpc_url, "http://127.0.0.1:8545", "flag beats file");
        std::fs::write(&p, "bogus_key = 1\n").unwrap();
        assert!(matches!(a.resolve(), Err(ConfigError::File { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
