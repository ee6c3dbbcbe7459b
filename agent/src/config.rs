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
    /// Directory of collateral files `<fmspc>.json` for genuine quotes.
    #[arg(long, env = "REPLICATOOR_COLLATERAL_DIR")]
    pub collateral_dir: Option<PathBuf>,
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
        let sender = self.sender_key.or(file.sender_key).ok_or(ConfigError::Missing(
            "sender_key",
            "sender-key",
            "REPLICATOOR_SENDER_KEY",
        ))?;
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
            if n == 0 || n > crate::crypto::bundle::MAX_SECRET_FILE {
                return Err(ConfigError::Invalid {
                    key: "generate_secret",
                    reason: format!("must be 1..={} bytes", crate::crypto::bundle::MAX_SECRET_FILE),
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
        Ok(RunConfig {
            rpc_url,
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
