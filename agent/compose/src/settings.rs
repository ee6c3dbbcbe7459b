//! The agent's settings, each with its flag, its environment variable and its class: the one table that
//! `run`, `config check`, `measure` and `audit` share. The node's `Settings` (agent/node/src/config) is
//! checked against it by a unit test, so a new setting cannot be added without a class here.
//!
//! The class decides what the machine's operator may choose. Only settings that cannot change what the
//! TD trusts or releases are the operator's: where to reach the chain and Intel's collateral (everything
//! served there is verified), which account pays, where health and logs go, and the node's role (a
//! genesis proposal still needs the owner's approval of this node's quote). Everything else is
//! security-relevant: its value must be written literally in the app's compose (measured into RTMR3 by
//! the compose hash) or left at its built-in default.

/// Who may choose a setting's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Untrusted transport or local plumbing: the operator's to set. What arrives over it is verified.
    Transport,
    /// The node's role in the cluster (founding node or not, exit after install): the operator's to set,
    /// since a role grants nothing the contract's owner has not approved.
    Role,
    /// Decides what the TD trusts or releases: only from the measured compose (or the default).
    Security,
}

/// One setting of `replicatoor run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The TOML key, and the name errors use.
    pub key: &'static str,
    /// The long flag, without `--`.
    pub flag: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// A switch (`--flag` alone; `true`/`false` in the environment) rather than a flag with a value.
    pub switch: bool,
    pub class: Class,
}

const fn s(key: &'static str, flag: &'static str, env: &'static str, switch: bool, class: Class) -> Setting {
    Setting { key, flag, env, switch, class }
}

use Class::{Role, Security, Transport};

/// Every setting of `replicatoor run` (and `config check`), plus the two global logging settings.
pub const SETTINGS: &[Setting] = &[
    // Transport: the operator's, by design. Everything served over them is verified inside the TD.
    s("rpc_url", "rpc-url", "REPLICATOOR_RPC_URL", false, Transport),
    s("witness_rpc_urls", "witness-rpc-url", "REPLICATOOR_WITNESS_RPC_URLS", false, Transport),
    s("beacon_url", "beacon-url", "REPLICATOOR_BEACON_URL", false, Transport),
    s("pccs_url", "pccs-url", "REPLICATOOR_PCCS_URL", false, Transport),
    s("collateral_dir", "collateral-dir", "REPLICATOOR_COLLATERAL_DIR", false, Transport),
    s("sender_key", "sender-key", "REPLICATOOR_SENDER_KEY", false, Transport),
    s("http_addr", "http-addr", "REPLICATOOR_HTTP_ADDR", false, Transport),
    s("log_format", "log-format", "REPLICATOOR_LOG_FORMAT", false, Transport),
    s("log", "log", "REPLICATOOR_LOG", false, Transport),
    // The node's role.
    s("genesis", "genesis", "REPLICATOOR_GENESIS", true, Role),
    s("generate_secret", "generate-secret", "REPLICATOOR_GENERATE_SECRET", false, Role),
    s("exit_after_install", "exit-after-install", "REPLICATOOR_EXIT_AFTER_INSTALL", true, Role),
    // Security-relevant: measured, or the default.
    s("config", "config", "REPLICATOOR_CONFIG", false, Security),
    s("deployment", "deployment", "REPLICATOOR_DEPLOYMENT", false, Security),
    s("dangerously_trust_rpc", "dangerously-trust-rpc", "REPLICATOOR_DANGEROUSLY_TRUST_RPC", true, Security),
    s("contract", "contract", "REPLICATOOR_CONTRACT", false, Security),
    s("start_block", "start-block", "REPLICATOOR_START_BLOCK", false, Security),
    s("state_dir", "state-dir", "REPLICATOOR_STATE_DIR", false, Security),
    s("secret_file", "secret-file", "REPLICATOOR_SECRET_FILE", false, Security),
    s("quote_provider", "quote-provider", "REPLICATOOR_QUOTE_PROVIDER", false, Security),
    s("dstack_socket", "dstack-socket", "REPLICATOOR_DSTACK_SOCKET", false, Security),
    s("app_compose", "app-compose", "REPLICATOOR_APP_COMPOSE", false, Security),
    s("allow_simulated_quotes", "allow-simulated-quotes", "REPLICATOOR_ALLOW_SIMULATED_QUOTES", true, Security),
    s("allow_insecure_rpc", "allow-insecure-rpc", "REPLICATOOR_ALLOW_INSECURE_RPC", true, Security),
    s("confirmations", "confirmations", "REPLICATOOR_CONFIRMATIONS", false, Security),
    s("poll_interval_ms", "poll-interval-ms", "REPLICATOOR_POLL_INTERVAL_MS", false, Security),
    s("jitter_ms", "jitter-ms", "REPLICATOOR_JITTER_MS", false, Security),
    s("backup_delay_blocks", "backup-delay-blocks", "REPLICATOOR_BACKUP_DELAY_BLOCKS", false, Security),
    s("max_refusals_per_step", "max-refusals-per-step", "REPLICATOOR_MAX_REFUSALS_PER_STEP", false, Security),
    s("max_refusal_gas_per_hour", "max-refusal-gas-per-hour", "REPLICATOOR_MAX_REFUSAL_GAS_PER_HOUR", false, Security),
];

/// The confirmation depth a node runs with when nothing sets one (the agent's `--confirmations`
/// default, and what `measure` reports for a compose that does not set it).
pub const DEFAULT_CONFIRMATIONS: u64 = 2;

/// The setting with this TOML key.
pub fn by_key(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the operator may choose this setting (transport or role); unknown names are not.
    fn operator_may_set(key: &str) -> bool {
        by_key(key).is_some_and(|s| s.class != Class::Security)
    }

    #[test]
    fn names_are_unique_and_derived_from_the_key() {
        for (i, a) in SETTINGS.iter().enumerate() {
            assert!(a.env.starts_with("REPLICATOOR_"), "{}", a.env);
            for b in &SETTINGS[i + 1..] {
                assert!(a.key != b.key && a.flag != b.flag && a.env != b.env, "{} and {} collide", a.key, b.key);
            }
        }
    }

    #[test]
    fn the_trust_decisions_are_security_settings() {
        for key in ["deployment", "dangerously_trust_rpc", "contract", "allow_simulated_quotes", "config"] {
            assert!(!operator_may_set(key), "{key}");
        }
        assert!(!operator_may_set("no_such_setting"), "unknown names are not the operator's");
        for key in ["rpc_url", "beacon_url", "pccs_url", "witness_rpc_urls", "sender_key", "http_addr", "log_format"] {
            assert!(operator_may_set(key), "{key}");
        }
    }
}
