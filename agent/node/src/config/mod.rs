//! Configuration of `replicatoor run`. Every setting is defined once, in [`Settings`]: its flag, its
//! environment variable (`REPLICATOOR_*`), its TOML key (the field name) and its default, which
//! `--help` shows. Precedence: flag, then environment, then the `--config` file, then the default.
//! Security-relevant switches default to strict. [`Settings::validate`] turns the merged settings
//! into the typed [`RunConfig`] the roles use; `config check` ([`check`]) runs the same validation.

mod check;
pub mod measured;

pub use check::{check, Level, Problem};

use crate::args::SecretKey;
use clap::{parser::ValueSource, ArgMatches, Args, FromArgMatches, ValueEnum};
use replicatoor_chain::endpoint::{transport, Transport};
use serde::{Deserialize, Serialize};
use std::{collections::BTreeSet, net::SocketAddr, path::PathBuf};

/// Where this node's own quote comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// The Dstack guest agent (production).
    Dstack,
    /// SIMULATED quotes (dev/test only; holders refuse them unless policy and flag allow).
    Simulated,
}

/// The settings of `replicatoor run`, as given (flags, env, file, defaults), before validation.
/// The TOML key of each is its field name; unknown keys are rejected.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// JSON-RPC endpoint (https:// outside local development).
    #[arg(long, env = "REPLICATOOR_RPC_URL")]
    pub rpc_url: Option<String>,
    /// Independent RPC endpoints that must agree with --rpc-url on the block hash and contract state a
    /// delivery is based on (repeat the flag, or comma-separate in the env var). A cross-check for
    /// unpinned dev setups: with a pinned deployment every decision is already proven against the
    /// trust root, and witnesses only add availability checks.
    #[arg(long = "witness-rpc-url", env = "REPLICATOOR_WITNESS_RPC_URLS", value_delimiter = ',')]
    pub witness_rpc_urls: Vec<String>,
    /// UpgradeOperator contract address.
    #[arg(long, env = "REPLICATOOR_CONTRACT")]
    pub contract: Option<String>,
    /// First block to scan for requests (the contract's deployment block).
    #[arg(long, env = "REPLICATOOR_START_BLOCK", default_value_t = 0)]
    pub start_block: u64,
    /// Directory of the agent's durable state (keys, checkpoint, outcomes).
    #[arg(long, env = "REPLICATOOR_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Path of the app's secret file (read at genesis, installed on new nodes).
    #[arg(long, env = "REPLICATOOR_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// Private key (hex) of the funded account that pays for this node's transactions.
    #[arg(long, env = "REPLICATOOR_SENDER_KEY", hide_env_values = true)]
    pub sender_key: Option<SecretKey>,
    /// Found a new cluster (first node only): create the cluster key and propose genesis.
    #[arg(long, env = "REPLICATOOR_GENESIS")]
    pub genesis: bool,
    /// With --genesis: generate a random secret file of this many bytes instead of reading one.
    #[arg(long, env = "REPLICATOOR_GENERATE_SECRET")]
    pub generate_secret: Option<usize>,
    /// Quote source: `dstack` (production) or `simulated` (dev/test).
    #[arg(long, value_enum, env = "REPLICATOOR_QUOTE_PROVIDER", default_value_t = ProviderKind::Dstack)]
    pub quote_provider: ProviderKind,
    /// Guest-agent socket (unset: /var/run/dstack.sock, then /var/run/tappd.sock).
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
    /// Intel PCS: https://api.trustedservices.intel.com
    #[arg(long, env = "REPLICATOOR_PCCS_URL", default_value = dcap_qvl::collateral::PHALA_PCCS_URL)]
    pub pccs_url: String,
    /// Blocks a request must be buried under before a holder acts (at most 64).
    #[arg(long, env = "REPLICATOOR_CONFIRMATIONS", default_value_t = replicatoor_compose::settings::DEFAULT_CONFIRMATIONS)]
    pub confirmations: u64,
    /// How often to poll the chain, in milliseconds (at least 50).
    #[arg(long, env = "REPLICATOOR_POLL_INTERVAL_MS", default_value_t = 1000)]
    pub poll_interval_ms: u64,
    /// Upper bound of the random delay before answering while this holder knows no other holder (then
    /// it may race unknown ones), so racing holders rarely both send.
    #[arg(long, env = "REPLICATOOR_JITTER_MS", default_value_t = 400)]
    pub jitter_ms: u64,
    /// Blocks a holder that is not first for a request (holders split requests by a hash of the
    /// request id and their address) waits before answering it if it is still pending: the others'
    /// backup. A holder that sees no other holder answer is first for every request.
    #[arg(long, env = "REPLICATOOR_BACKUP_DELAY_BLOCKS", default_value_t = 3)]
    pub backup_delay_blocks: u64,
    /// Most refusals a holder posts per scanned block range (a junk flood costs the holder gas).
    #[arg(long, env = "REPLICATOOR_MAX_REFUSALS_PER_STEP", default_value_t = 16)]
    pub max_refusals_per_step: u32,
    /// Most gas a holder spends on refusals in any hour (their receipts' gas, plus an estimate for
    /// those in flight): a junk flood costs it at most this much. Over it, refusals wait (the requests
    /// stay pending, PROTOCOL.md §5.2) and deliveries go on.
    #[arg(long, env = "REPLICATOOR_MAX_REFUSAL_GAS_PER_HOUR", default_value_t = 8_000_000)]
    pub max_refusal_gas_per_hour: u64,
    /// New node: exit after installing the secret instead of serving as a holder.
    #[arg(long, env = "REPLICATOOR_EXIT_AFTER_INSTALL")]
    pub exit_after_install: bool,
    /// Allow plain http:// RPC URLs to non-local hosts (insecure).
    #[arg(long, env = "REPLICATOOR_ALLOW_INSECURE_RPC")]
    pub allow_insecure_rpc: bool,
    /// Health and metrics endpoint (/healthz, /readyz, /status, /metrics); `off` to disable.
    #[arg(long, env = "REPLICATOOR_HTTP_ADDR", default_value = "127.0.0.1:9090")]
    pub http_addr: String,
    /// The pinned deployment identity, as TOML text (chain id, contract, start block, trust root; see
    /// docs/deploy.md). Security-relevant: write it literally in the app's compose, where the compose
    /// hash measures it. With it a holder decides only on chain state proven against headers its trust
    /// root authenticates, and the agent refuses an RPC on another chain.
    #[arg(long, env = "REPLICATOOR_DEPLOYMENT")]
    pub deployment: Option<String>,
    /// Run without a pinned deployment, on whatever the RPC says about the chain. The machine's
    /// operator chooses the RPC, so this hands the release decision to the operator: dev/test only.
    /// `run` refuses to start with neither this nor `--deployment`.
    #[arg(long, env = "REPLICATOOR_DANGEROUSLY_TRUST_RPC")]
    pub dangerously_trust_rpc: bool,
    /// Beacon API endpoint the light client reads from (untrusted transport; everything it serves is
    /// verified). Needed when the pinned deployment's trust root is a beacon light client.
    #[arg(long, env = "REPLICATOOR_BEACON_URL")]
    pub beacon_url: Option<String>,
}

impl Default for Settings {
    /// The built-in defaults: what `run` uses when no flag, environment variable or file sets a
    /// value. Read from the definition above (environment ignored), so they cannot drift from `--help`.
    fn default() -> Self {
        let cmd = Settings::augment_args(clap::Command::new("defaults").no_binary_name(true))
            .mut_args(|a| a.env(None::<&str>));
        let parsed = cmd.try_get_matches_from(std::iter::empty::<&str>()).and_then(|m| Settings::from_arg_matches(&m));
        // Only a setting made required without a default could fail here: a bug the unit tests catch.
        parsed.unwrap_or_else(|e| panic!("the settings' defaults do not parse: {e}"))
    }
}

/// `run`'s arguments: the optional `--config` file and the [`Settings`], remembering which settings a
/// flag or an environment variable gave (those beat the file).
#[derive(Debug, Clone)]
pub struct RunArgs {
    pub config: Option<PathBuf>,
    pub settings: Settings,
    explicit: BTreeSet<String>,
}

/// What clap sees of [`RunArgs`].
#[derive(Args)]
struct RunFlags {
    /// TOML configuration file (keys: the long flag names with underscores; flags and environment beat it).
    #[arg(long, env = "REPLICATOOR_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

impl FromArgMatches for RunArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut m.clone())
    }

    fn from_arg_matches_mut(m: &mut ArgMatches) -> Result<Self, clap::Error> {
        // Read the sources before the derived code takes the values out of `m`. Only settings count:
        // `--config` or a sibling flag (`config check --deny-warnings`) must not hide a key of the file.
        let settings = Settings::augment_args(clap::Command::new("settings"));
        let explicit = settings
            .get_arguments()
            .map(|a| a.get_id().as_str())
            .filter(|id| matches!(m.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable)))
            .map(str::to_string)
            .collect();
        let RunFlags { config, settings } = RunFlags::from_arg_matches_mut(m)?;
        Ok(RunArgs { config, settings, explicit })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for RunArgs {
    fn group_id() -> Option<clap::Id> {
        RunFlags::group_id()
    }
    fn augment_args(cmd: clap::Command) -> clap::Command {
        RunFlags::augment_args(cmd)
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        RunFlags::augment_args_for_update(cmd)
    }
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
    pub backup_delay_blocks: u64,
    pub max_refusals_per_step: u32,
    pub max_refusal_gas_per_hour: u64,
    pub exit_after_install: bool,
    /// Where to serve health and metrics (None = off).
    pub http_addr: Option<SocketAddr>,
    /// The pinned deployment (None: the chain view is the RPC's, unverified).
    pub deployment: Option<replicatoor_chain::deployment::PinnedDeployment>,
    /// Beacon API endpoint (untrusted transport) for a beacon trust root.
    pub beacon_url: Option<String>,
    /// Whether these settings were checked against the compose this CVM measured
    /// ([`measured::resolve`]); [`Settings::validate`] alone leaves it `NotSelfMeasured`.
    pub measurement: Measurement,
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
    /// Layer the file under flags and environment, then validate.
    pub fn resolve(self) -> Result<RunConfig, ConfigError> {
        self.layered()?.validate()
    }

    /// The settings with the `--config` file applied: each key of the file counts unless a flag or an
    /// environment variable set that setting. Merged as TOML so the file is type-checked against the
    /// same definition (and unknown keys rejected).
    pub fn layered(self) -> Result<Settings, ConfigError> {
        self.layered_with_sources().map(|(settings, _)| settings)
    }

    /// [`RunArgs::layered`], and the settings the operator gave (by flag, environment or file): the
    /// others are at their defaults.
    pub fn layered_with_sources(self) -> Result<(Settings, BTreeSet<String>), ConfigError> {
        let mut given = self.explicit.clone();
        let Some(path) = &self.config else { return Ok((self.settings, given)) };
        let err = |reason: String| ConfigError::File { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let file: toml::Table = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let mut merged = toml::Table::try_from(&self.settings)
            .map_err(|e| err(format!("cannot combine with the flags and environment: {e}")))?;
        for (key, value) in file {
            if !self.explicit.contains(&key) {
                merged.insert(key.clone(), value);
                given.insert(key);
            }
        }
        // toml puts the key on a second line: one line reads better in `config check`.
        let settings =
            merged.try_into().map_err(|e: toml::de::Error| err(e.to_string().trim_end().replace('\n', " ")))?;
        Ok((settings, given))
    }
}

impl Settings {
    /// A release build can neither make nor trust a simulated quote: checked before anything else.
    pub fn refuse_unbuilt(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| ConfigError::Invalid { key, reason };
        if self.allow_simulated_quotes && !crate::simulated::BUILT {
            return Err(invalid("allow_simulated_quotes", crate::simulated::NotBuilt.to_string()));
        }
        if self.quote_provider == ProviderKind::Simulated && !crate::simulated::BUILT {
            return Err(invalid("quote_provider", crate::simulated::NotBuilt.to_string()));
        }
        Ok(())
    }

    /// Check every setting and convert it to the type the agent uses.
    pub fn validate(self) -> Result<RunConfig, ConfigError> {
        let invalid = |key, reason: String| ConfigError::Invalid { key, reason };
        self.refuse_unbuilt()?;
        let rpc_url = self.rpc_url.ok_or(ConfigError::Missing("rpc_url", "rpc-url", "REPLICATOOR_RPC_URL"))?;
        check_rpc_url(&rpc_url, self.allow_insecure_rpc)?;
        let contract = self.contract.ok_or(ConfigError::Missing("contract", "contract", "REPLICATOOR_CONTRACT"))?;
        let contract = contract.parse().map_err(|e| invalid("contract", format!("{e}")))?;
        let sender =
            self.sender_key.ok_or(ConfigError::Missing("sender_key", "sender-key", "REPLICATOOR_SENDER_KEY"))?;
        let sender_key = sender.signer().map_err(|e| invalid("sender_key", e.to_string()))?;
        if let Some(n) = self.generate_secret {
            if !self.genesis {
                return Err(invalid("generate_secret", "only meaningful with --genesis".into()));
            }
            let max = replicatoor_core::crypto::bundle::MAX_SECRET_FILE;
            if n == 0 || n > max {
                return Err(invalid("generate_secret", format!("must be 1..={max} bytes")));
            }
        }
        let http_addr = match self.http_addr.as_str() {
            "off" => None,
            a => Some(a.parse().map_err(|e| invalid("http_addr", format!("{a:?}: {e}")))?),
        };
        if self.quote_provider == ProviderKind::Simulated && self.app_compose.is_none() {
            return Err(ConfigError::Missing("app_compose", "app-compose", "REPLICATOOR_APP_COMPOSE"));
        }
        for w in &self.witness_rpc_urls {
            check_rpc_url(w, self.allow_insecure_rpc)?;
            if *w == rpc_url {
                return Err(invalid("witness_rpc_urls", "a witness must differ from rpc_url".into()));
            }
        }
        let state_dir =
            self.state_dir.ok_or(ConfigError::Missing("state_dir", "state-dir", "REPLICATOOR_STATE_DIR"))?;
        let secret_file =
            self.secret_file.ok_or(ConfigError::Missing("secret_file", "secret-file", "REPLICATOOR_SECRET_FILE"))?;
        let pccs_url = pccs_url(&self.pccs_url)?;
        replicatoor_chain::deployment::check_confirmations(self.confirmations)
            .map_err(|e| invalid("confirmations", e.to_string()))?;
        let deployment = pinned(
            self.deployment.as_deref(),
            contract,
            self.beacon_url.as_deref(),
            self.allow_insecure_rpc,
            self.dangerously_trust_rpc,
        )?;
        Ok(RunConfig {
            deployment,
            beacon_url: self.beacon_url,
            rpc_url,
            witness_rpc_urls: self.witness_rpc_urls,
            contract,
            start_block: self.start_block,
            state_dir,
            secret_file,
            sender_key,
            genesis: self.genesis,
            generate_secret: self.generate_secret,
            quote_provider: self.quote_provider,
            dstack_socket: self.dstack_socket,
            app_compose: self.app_compose,
            allow_simulated_quotes: self.allow_simulated_quotes,
            collateral_dir: self.collateral_dir,
            pccs_url,
            confirmations: self.confirmations,
            poll_interval_ms: self.poll_interval_ms.max(50),
            jitter_ms: self.jitter_ms,
            backup_delay_blocks: self.backup_delay_blocks.max(1),
            max_refusals_per_step: self.max_refusals_per_step,
            max_refusal_gas_per_hour: self.max_refusal_gas_per_hour,
            exit_after_install: self.exit_after_install,
            http_addr,
            measurement: Measurement::NotSelfMeasured,
        })
    }
}

/// The PCCS to fetch collateral from: https:// (or plain http on loopback), or `off`.
fn pccs_url(url: &str) -> Result<Option<String>, ConfigError> {
    match url {
        "off" => Ok(None),
        u => match transport(u) {
            Ok(Transport::Https | Transport::LoopbackHttp) => Ok(Some(u.trim_end_matches('/').to_string())),
            _ => Err(ConfigError::Invalid { key: "pccs_url", reason: format!("{u:?} must be https:// (or off)") }),
        },
    }
}

/// The pinned deployment, checked against the contract, this build and its beacon URL; or none, only
/// when the operator said `--dangerously-trust-rpc` (dev and test chains).
fn pinned(
    text: Option<&str>,
    contract: alloy::primitives::Address,
    beacon_url: Option<&str>,
    allow_insecure_rpc: bool,
    dangerously_trust_rpc: bool,
) -> Result<Option<replicatoor_chain::deployment::PinnedDeployment>, ConfigError> {
    let invalid = |key, reason: String| ConfigError::Invalid { key, reason };
    let deployment = match text {
        None => None,
        Some(text) => {
            let d = replicatoor_chain::deployment::PinnedDeployment::from_toml(text)
                .map_err(|e| invalid("deployment", e.to_string()))?;
            if d.contract != contract {
                return Err(invalid("deployment", format!("pins contract {}, but contract is {contract}", d.contract)));
            }
            // Also a custom network that is the simulated one relabelled (its committee keys are public).
            d.check_build(crate::simulated::BUILT).map_err(|e| invalid("deployment", e.to_string()))?;
            if d.beacon_network().map_err(|e| invalid("deployment", e.to_string()))?.is_some() {
                let url =
                    beacon_url.ok_or(ConfigError::Missing("beacon_url", "beacon-url", "REPLICATOOR_BEACON_URL"))?;
                check_rpc_url(url, allow_insecure_rpc)
                    .map_err(|_| invalid("beacon_url", format!("{url:?} must be https:// outside loopback")))?;
            }
            Some(d)
        }
    };
    match (&deployment, dangerously_trust_rpc) {
        (None, false) => {
            return Err(invalid(
                "deployment",
                "no pinned deployment: a node must know which chain and contract it serves, and how to \
                 authenticate them, from its measured configuration"
                    .into(),
            ))
        }
        (Some(_), true) => {
            return Err(invalid("dangerously_trust_rpc", "contradicts the pinned deployment: remove one".into()))
        }
        _ => {}
    }
    Ok(deployment)
}

/// Whether a node's configuration was checked against the compose its CVM measured: what `/status`,
/// `/metrics`, `config check` and the start-up log say. Reporting only, so not in `measured.rs` (not
/// counted, TRUST.md section 4): `measured::resolve` decides whether the settings are the measured
/// compose's, and refuses them otherwise; this only records which of its two successes it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measurement {
    /// Checked: the security settings are the measured compose's.
    SelfMeasured {
        /// The compose hash (sha256 of the app-compose.json) the node's RTMR3 carries.
        compose_hash: [u8; 32],
        /// The agent's service in it.
        service: String,
    },
    /// Not checked: the simulated quote provider has no measured compose (dev and tests only).
    NotSelfMeasured,
}

/// How a node's configuration is known (reporting only: `resolve` in `measured.rs` decides it).
impl Measurement {
    /// What `/status` and `config check` say.
    pub fn describe(&self) -> String {
        match self {
            Measurement::SelfMeasured { compose_hash, service } => {
                format!("self-measured (service `{service}` of compose {})", hex::encode(compose_hash))
            }
            Measurement::NotSelfMeasured => "NOT self-measured (simulated quote provider: dev/test only)".into(),
        }
    }

    pub fn is_self_measured(&self) -> bool {
        matches!(self, Measurement::SelfMeasured { .. })
    }
}

/// Plain http is only for loopback (local dev); elsewhere a MITM could feed us a fake chain.
pub fn check_rpc_url(url: &str, allow_insecure: bool) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { key: "rpc_url", reason };
    match transport(url) {
        Ok(Transport::Https | Transport::LoopbackHttp) => Ok(()),
        Ok(Transport::RemoteHttp) if allow_insecure => Ok(()),
        Ok(Transport::RemoteHttp) => Err(invalid(format!(
            "{url:?}: plain http:// is only allowed for localhost (127.0.0.0/8, [::1]); use https:// or \
             --allow-insecure-rpc"
        ))),
        Err(e) => Err(invalid(format!("{e} (https://, or http:// for a local node)"))),
    }
}

#[cfg(test)]
mod tests;
