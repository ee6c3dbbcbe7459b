//! What an app-compose.json measures. Its bytes are hashed into the compose hash the contract
//! approves, but a docker compose file can still take values from outside it: `${VAR}` substitution,
//! `env_file`, and the variables Dstack lets the operator provide (`allowed_envs`). A security setting
//! that comes from there is chosen by the machine's operator, not measured; so is an image referenced
//! by tag instead of digest. `replicatoor measure --compose` and `replicatoor audit` (on the compose an
//! app reference published) report both, the pinned deployment the compose carries and the trust mode
//! its nodes run in. Pure (bytes in, report out): it lives here, not in the node, so the audit can use
//! it on chain data, and not in the trust kernel, which never parses a compose.

use replicatoor_chain::deployment::PinnedDeployment;
use serde::Serialize;
use yaml_rust2::{Yaml, YamlLoader};

/// Why an app-compose.json could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("app-compose.json is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("docker_compose_file is not YAML: {0}")]
    Yaml(String),
}

/// Settings the TD's decisions depend on: each must be written literally in the compose (or left
/// to its strict default). Transport and per-node values (RPC and beacon URLs, the sender key, the
/// genesis switch, ports, logs) may come from the operator.
const SECURITY_SETTINGS: [&str; 10] = [
    "DEPLOYMENT",
    "DANGEROUSLY_TRUST_RPC",
    "CONFIG",
    "CONTRACT",
    "START_BLOCK",
    "ALLOW_SIMULATED_QUOTES",
    "QUOTE_PROVIDER",
    "DSTACK_SOCKET",
    "CONFIRMATIONS",
    "ALLOW_INSECURE_RPC",
];

/// What `measure --compose` finds in an app-compose.json.
#[derive(Debug, Default, Serialize)]
pub struct ComposeReport {
    /// The deployment the compose pins literally (None: not pinned, or not literally).
    pub pinned_deployment: Option<PinnedDeployment>,
    /// Security settings whose value the operator can choose, each with where it comes from.
    pub unmeasured: Vec<Unmeasured>,
    /// `service: image` for every image referenced by tag (a tag can move; a digest cannot).
    pub images_by_tag: Vec<String>,
    /// The services that run the replicatoor agent.
    pub agent_services: Vec<String>,
    /// The split of the agent's variables (`service: REPLICATOOR_…`): written literally in the compose,
    /// hence measured ...
    pub measured: Vec<String>,
    /// ... or chosen by the operator (substituted, passed through, or listed in `allowed_envs`): to be
    /// transport or per-node values only, which `unmeasured` checks.
    pub operator_provided: Vec<String>,
}

/// Trust mode of a node without a (literal) pinned deployment: it believes its RPC.
pub const UNVERIFIED: &str = "rpc-unverified";

impl ComposeReport {
    /// How nodes running this compose authenticate chain state: the pinned trust root's mode
    /// (`beacon-light-client`, `rpc-quorum`, `simulated-beacon`), or [`UNVERIFIED`] when nothing is
    /// pinned literally.
    pub fn trust_mode(&self) -> &'static str {
        self.pinned_deployment.as_ref().map_or(UNVERIFIED, |d| d.trust.mode_name())
    }
}

/// One security setting the compose does not measure.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Unmeasured {
    /// The compose service.
    pub service: String,
    /// The setting, as its environment variable (`REPLICATOOR_…`) or flag.
    pub setting: String,
    /// Where its value comes from.
    pub source: String,
}

/// Read an app-compose.json (Dstack's format: the docker compose file is the `docker_compose_file` string).
pub fn check(app_compose: &[u8]) -> Result<ComposeReport, ComposeError> {
    let doc: serde_json::Value = serde_json::from_slice(app_compose)?;
    let allowed: Vec<String> = doc["allowed_envs"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let yaml = doc["docker_compose_file"].as_str().unwrap_or_default();
    let docs = YamlLoader::load_from_str(yaml).map_err(|e| ComposeError::Yaml(e.to_string()))?;
    let mut report = ComposeReport::default();
    let Some(services) = docs.first().and_then(|d| d["services"].as_hash()) else { return Ok(report) };
    for (name, svc) in services {
        let service = name.as_str().unwrap_or("?").to_string();
        if let Some(image) = svc["image"].as_str() {
            if !image.contains("@sha256:") {
                report.images_by_tag.push(format!("{service}: {image}"));
            }
        }
        let env = environment(svc);
        let command = strings(&svc["command"]);
        let runs_agent = env.iter().any(|(k, _)| k.starts_with("REPLICATOOR_"))
            || command.iter().any(|c| c == "run")
            || svc["image"].as_str().is_some_and(|i| i.contains("replicatoor"));
        if !runs_agent {
            continue;
        }
        report.agent_services.push(service.clone());
        let mut vars: Vec<&str> =
            env.iter().map(|(k, _)| k.as_str()).filter(|k| k.starts_with("REPLICATOOR_")).collect();
        vars.extend(allowed.iter().map(String::as_str).filter(|k| k.starts_with("REPLICATOOR_")));
        vars.sort_unstable();
        vars.dedup();
        for var in vars {
            let value = env.iter().find(|(k, _)| k == var).and_then(|(_, v)| v.as_deref());
            let chosen = allowed.iter().any(|a| a == var) || value.is_none_or(|v| v.contains('$'));
            let list = if chosen { &mut report.operator_provided } else { &mut report.measured };
            list.push(format!("{service}: {var}"));
        }
        let mut flag = |setting: &str, source: String| {
            report.unmeasured.push(Unmeasured { service: service.clone(), setting: setting.into(), source })
        };
        if !strings(&svc["env_file"]).is_empty() {
            flag("env_file", format!("{:?}: values from files the operator provides", strings(&svc["env_file"])));
        }
        for key in SECURITY_SETTINGS {
            let var = format!("REPLICATOOR_{key}");
            let flag_name = format!("--{}", key.to_lowercase().replace('_', "-"));
            let from_env = env.iter().find(|(k, _)| *k == var).map(|(_, v)| v.clone());
            let from_cmd = command.iter().position(|c| *c == flag_name).and_then(|i| command.get(i + 1).cloned());
            for value in [from_env.flatten(), from_cmd].into_iter().flatten() {
                if value.contains('$') {
                    flag(&var, format!("{value:?}: substituted from the operator's environment"));
                } else if key == "DEPLOYMENT" {
                    report.pinned_deployment = PinnedDeployment::from_toml(&value).ok();
                }
            }
            if allowed.contains(&var) {
                flag(&var, "listed in allowed_envs: the operator may set it".into());
            }
            if env.iter().any(|(k, v)| *k == var && v.is_none()) {
                flag(&var, "passed through from the operator's environment (no value in the compose)".into());
            }
        }
    }
    Ok(report)
}

/// A service's `environment`, as a map or a `KEY=VALUE` list; a key without a value passes the
/// operator's variable through (None).
fn environment(svc: &Yaml) -> Vec<(String, Option<String>)> {
    match &svc["environment"] {
        Yaml::Hash(h) => h.iter().filter_map(|(k, v)| Some((k.as_str()?.to_string(), scalar(v)))).collect(),
        Yaml::Array(a) => a
            .iter()
            .filter_map(Yaml::as_str)
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (e.to_string(), None),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A string or a list of strings (`command`, `env_file`).
fn strings(v: &Yaml) -> Vec<String> {
    match v {
        Yaml::String(s) => s.split_whitespace().map(str::to_string).collect(),
        Yaml::Array(a) => a.iter().filter_map(scalar).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_compose(yaml: &str, allowed: &[&str]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "manifest_version": 2,
            "runner": "docker-compose",
            "docker_compose_file": yaml,
            "allowed_envs": allowed,
        }))
        .unwrap()
    }

    const PIN: &str = "chain_id = 1\ncontract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\nstart_block = 1\n[trust]\nmode = \"beacon\"\nnetwork = \"mainnet\"\ncheckpoint = \"0x5afc212a7924789b2bc86acad3ab3a6ffb1f6e97253ea50bee7f4f51422c9275\"\n";

    #[test]
    fn a_literal_pin_and_digests_measure_everything() {
        let yaml = format!(
            "services:\n  agent:\n    image: reg/replicatoor@sha256:{}\n    environment:\n      REPLICATOOR_RPC_URL: ${{RPC}}\n      REPLICATOOR_DEPLOYMENT: |\n{}\n",
            "0".repeat(64),
            PIN.lines().map(|l| format!("        {l}")).collect::<Vec<_>>().join("\n")
        );
        let r = check(&app_compose(&yaml, &["REPLICATOOR_SENDER_KEY"])).unwrap();
        assert_eq!(r.pinned_deployment.as_ref().map(|d| d.chain_id), Some(1));
        assert!(r.unmeasured.is_empty(), "{:?}", r.unmeasured);
        assert!(r.images_by_tag.is_empty());
        assert_eq!(r.trust_mode(), "beacon-light-client");
        assert_eq!(r.agent_services, ["agent"]);
        assert_eq!(r.measured, ["agent: REPLICATOOR_DEPLOYMENT"]);
        assert_eq!(r.operator_provided, ["agent: REPLICATOOR_RPC_URL", "agent: REPLICATOOR_SENDER_KEY"]);
    }

    #[test]
    fn operator_chosen_security_settings_and_tags_are_flagged() {
        let yaml = "services:\n  app:\n    image: example/app:1.0\n  agent:\n    image: reg/replicatoor:latest\n    env_file: [agent.env]\n    command: [\"run\", \"--contract\", \"${C}\"]\n    environment:\n      - REPLICATOOR_DEPLOYMENT=${PIN}\n      - REPLICATOOR_CONFIRMATIONS\n";
        let r = check(&app_compose(yaml, &["REPLICATOOR_ALLOW_SIMULATED_QUOTES"])).unwrap();
        assert!(r.pinned_deployment.is_none());
        assert_eq!(r.trust_mode(), UNVERIFIED, "a substituted pin pins nothing");
        let settings: Vec<_> = r.unmeasured.iter().map(|u| u.setting.as_str()).collect();
        for s in [
            "env_file",
            "REPLICATOOR_DEPLOYMENT",
            "REPLICATOOR_CONTRACT",
            "REPLICATOOR_CONFIRMATIONS",
            "REPLICATOOR_ALLOW_SIMULATED_QUOTES",
        ] {
            assert!(settings.contains(&s), "{s} not flagged: {settings:?}");
        }
        assert_eq!(r.images_by_tag, ["app: example/app:1.0", "agent: reg/replicatoor:latest"]);
        // Substituted, passed through and allowed variables are all the operator's; none is literal.
        assert!(r.measured.is_empty(), "{:?}", r.measured);
        assert_eq!(
            r.operator_provided,
            [
                "agent: REPLICATOOR_ALLOW_SIMULATED_QUOTES",
                "agent: REPLICATOOR_CONFIRMATIONS",
                "agent: REPLICATOOR_DEPLOYMENT"
            ]
        );
    }
}
