//! The agent's own service in a compose, and where each of its settings comes from.
//!
//! The rule that finds it (PROTOCOL.md / docs/deploy.md state it too): the agent's service is the one
//! service that sets a `REPLICATOOR_*` variable in `environment`, or whose image, entrypoint or command
//! names `replicatoor`. None, or more than one, is an error: the node then cannot tell which settings
//! are its own.

use crate::reader::{AppCompose, ComposeError, Value};
use crate::settings::Setting;

/// Where one setting's value comes from in the agent's service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Origin {
    pub setting: &'static str,
    /// `--flag value` / `--flag=value` / `--flag` in the command, or `environment REPLICATOOR_X`.
    pub place: String,
    pub value: Value,
}

/// The agent's settings as its measured compose fixes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// The service name.
    pub service: String,
    /// One entry per setting the service sets (the command's beats the environment's, as in the agent),
    /// in the order of [`crate::settings::SETTINGS`]. A setting absent here takes its built-in default.
    pub settings: Vec<Origin>,
    /// Ways the operator can reach the agent's configuration that name no single setting
    /// (`env_file`, an unparsable shell command, an unknown flag, `extends`, ...): each a sentence.
    pub outside: Vec<String>,
}

impl AgentConfig {
    /// The origin of one setting, by its TOML key.
    pub fn get(&self, key: &str) -> Option<&Origin> {
        self.settings.iter().find(|o| o.setting == key)
    }
}

/// Find the agent's service by the rule above and read its settings.
pub fn agent_config(compose: &AppCompose) -> Result<AgentConfig, ComposeError> {
    let _: Option<&Setting> = None;
    let _ = (compose, Value::Literal { value: String::new() });
    Err(ComposeError::Shape("not implemented yet".into()))
}
