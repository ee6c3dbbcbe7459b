//! What an app-compose.json measures. Its bytes are hashed into the compose hash the contract
//! approves, but a docker compose file can still take values from outside it: `${VAR}` substitution,
//! `env_file`, and the variables Dstack lets the operator provide (`allowed_envs`). A security setting
//! that comes from there is chosen by the machine's operator, not measured; so is an image referenced
//! by tag instead of digest. `replicatoor measure --compose` and `replicatoor audit` (on the compose an
//! app reference published) report both, the pinned deployment the compose carries and the trust mode
//! its nodes run in. Pure (bytes in, report out): it lives here, not in the node, so the audit can use
//! it on chain data, and not in the trust kernel, which never parses a compose.

use replicatoor_chain::deployment::{PinnedDeployment, TrustParameter};
pub use replicatoor_compose::reader::ComposeError;
use replicatoor_compose::{
    agent::{agent_config, AgentConfig},
    reader::{self, AppCompose, Value},
    settings::{self as table, Class},
};
use serde::Serialize;

/// What `measure --compose` finds in an app-compose.json.
#[derive(Debug, Default, Serialize)]
pub struct ComposeReport {
    /// The deployment the compose pins literally (None: not pinned, or not literally).
    pub pinned_deployment: Option<PinnedDeployment>,
    /// Security settings whose value the operator can choose, each with where it comes from.
    pub unmeasured: Vec<Unmeasured>,
    /// `service: image` for every image referenced by tag (a tag can move; a digest cannot).
    pub images_by_tag: Vec<String>,
    /// The service that runs the replicatoor agent (found by the one rule of `replicatoor_compose::agent`),
    /// or none.
    pub agent_services: Vec<String>,
    /// The agent's settings the compose sets (`service: REPLICATOOR_…`, or `service: --flag` from the
    /// command): written literally in the compose, hence measured ...
    pub measured: Vec<String>,
    /// ... or chosen by the operator (substituted, passed through, or listed in `allowed_envs`): to be
    /// transport or role settings only, which `unmeasured` checks.
    pub operator_provided: Vec<String>,
    /// Whether nodes running this compose check their configuration against it: they do on the `dstack`
    /// quote provider (the default); on simulated quotes (dev only) nothing is self-measured.
    pub self_measured: bool,
    /// Why the literal pin is not a usable deployment (its nodes refuse to start on it), if it is not.
    pub pin_error: Option<String>,
    /// Every trust parameter its nodes run with (the pin's, and the confirmation depth), with its bound.
    pub trust_parameters: Vec<TrustParameter>,
}

/// Trust mode of a node without a (literal) pinned deployment: it believes its RPC.
pub const UNVERIFIED: &str = "rpc-unverified";

impl ComposeReport {
    /// How nodes running this compose authenticate chain state: the pinned trust root's mode
    /// (`beacon-light-client`, `rpc-quorum`, `simulated-beacon`, ...), or [`UNVERIFIED`] when nothing is
    /// pinned literally.
    pub fn trust_mode(&self) -> &'static str {
        self.pinned_deployment.as_ref().map_or(UNVERIFIED, |d| d.trust.mode_name())
    }

    /// A security setting of `service` whose value comes from `source`, not from the compose.
    fn flag(&mut self, service: &str, setting: String, source: String) {
        self.unmeasured.push(Unmeasured { service: service.to_string(), setting, source })
    }
}

/// One security setting the compose does not measure.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Unmeasured {
    /// The compose service.
    pub service: String,
    /// The setting, as its environment variable (`REPLICATOOR_…`) or flag; `compose` for a way in that
    /// names no single setting.
    pub setting: String,
    /// Where its value comes from.
    pub source: String,
}

/// Read an app-compose.json (Dstack's format: the docker compose file is the `docker_compose_file`
/// string) with the reader the agent checks its own configuration with.
pub fn check(app_compose: &[u8]) -> Result<ComposeReport, ComposeError> {
    let compose = reader::read(app_compose)?;
    let mut report = ComposeReport { images_by_tag: images_by_tag(&compose), ..ComposeReport::default() };
    let agent = match agent_config(&compose) {
        Ok(a) => a,
        // No agent here: nothing of the agent's is measured (the audit says so). Several: a node could
        // not tell its own settings, and refuses to start; say why.
        Err(e) => {
            if compose.services.iter().any(|s| s.environment.iter().any(|(k, _)| k.starts_with("REPLICATOOR_"))) {
                report.unmeasured.push(Unmeasured {
                    service: "-".into(),
                    setting: "compose".into(),
                    source: e.to_string(),
                });
            }
            return Ok(report);
        }
    };
    let service = agent.service.clone();
    report.agent_services.push(service.clone());
    // The agent's reading already carries the file-wide ways in (`include`, ...).
    for how in &agent.outside {
        report.flag(&service, "compose".into(), how.clone());
    }
    let (provider_is_dstack, confirmations) = agent_settings(&agent, &mut report);
    // Dstack offers the variables in allowed_envs to the compose: a security variable there is the
    // operator's to set wherever the compose reads it.
    for var in &compose.allowed_envs {
        let Some(setting) = table::SETTINGS.iter().find(|s| s.env == var) else { continue };
        report.operator_provided.push(format!("{service}: {var}"));
        if setting.class == Class::Security {
            report.flag(&service, var.clone(), "listed in allowed_envs: the operator may set it".into());
        }
    }
    report.operator_provided.sort();
    report.operator_provided.dedup();
    report.unmeasured.dedup();
    report.self_measured = provider_is_dstack;
    if let Some(d) = &report.pinned_deployment {
        report.trust_parameters = d.trust_parameters();
    }
    report.trust_parameters.extend(confirmations.map(TrustParameter::confirmations));
    Ok(report)
}

/// `service: image` for every image referenced by tag, or chosen by the operator.
fn images_by_tag(compose: &AppCompose) -> Vec<String> {
    let mut out = Vec::new();
    for svc in &compose.services {
        match svc.image.as_ref().map(|image| &image.value) {
            Some(Value::Literal { value }) if !value.contains("@sha256:") => out.push(format!("{}: {value}", svc.name)),
            Some(Value::Operator { source }) => out.push(format!("{}: image {source}", svc.name)),
            _ => {}
        }
    }
    out
}

/// The agent's settings the compose writes (measured) or leaves to the operator (a security one is
/// flagged), with the pin; whether its quote provider is `dstack`, and its confirmation depth.
fn agent_settings(agent: &AgentConfig, report: &mut ComposeReport) -> (bool, Option<u64>) {
    let service = &agent.service;
    let mut provider_is_dstack = true;
    let mut confirmations = Some(table::DEFAULT_CONFIRMATIONS);
    for origin in &agent.settings {
        let Some(setting) = table::by_key(origin.setting) else { continue };
        let name = if origin.place.starts_with("environment") {
            setting.env.to_string()
        } else {
            format!("--{}", setting.flag)
        };
        match &origin.value {
            Value::Literal { value } => {
                report.measured.push(format!("{service}: {name}"));
                match setting.key {
                    "deployment" => match PinnedDeployment::from_toml(value) {
                        Ok(d) => report.pinned_deployment = Some(d),
                        Err(e) => report.pin_error = Some(e.to_string()),
                    },
                    "quote_provider" => provider_is_dstack = value == "dstack",
                    "confirmations" => confirmations = value.parse().ok(),
                    _ => {}
                }
            }
            Value::Operator { source } => {
                report.operator_provided.push(format!("{service}: {name}"));
                if setting.class == Class::Security {
                    report.flag(service, name, format!("{}: {source}", origin.place));
                }
            }
        }
    }
    (provider_is_dstack, confirmations)
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
            "compose",
            "REPLICATOOR_DEPLOYMENT",
            "--contract",
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
                "agent: --contract",
                "agent: REPLICATOOR_ALLOW_SIMULATED_QUOTES",
                "agent: REPLICATOOR_CONFIRMATIONS",
                "agent: REPLICATOOR_DEPLOYMENT"
            ]
        );
        assert!(r.self_measured, "the dstack provider by default");
    }

    /// What an auditor tried (issue #23), each form flagged for its own reason by `measure` and `audit`;
    /// the shipped example and a transport-only operator argument stay clean.
    #[test]
    fn every_way_the_operator_reaches_a_security_setting_is_flagged_and_transport_is_not() {
        let agent = |more: &str, env: &str| {
            format!(
                "x-extra: &extra\n  REPLICATOOR_DANGEROUSLY_TRUST_RPC: ${{TRUST}}\nservices:\n  agent:\n    image: \
                 reg/replicatoor@sha256:{}\n{more}    environment:\n      REPLICATOOR_RPC_URL: ${{RPC}}\n{env}",
                "0".repeat(64)
            )
        };
        let cases: [(String, &str, &str); 8] = [
            (agent("    command: [\"run\", \"${X}\"]\n", ""), "compose", "${X}"),
            (agent("    command: [\"run\", \"--deployment=${PIN}\"]\n", ""), "--deployment", "${PIN}"),
            (agent("    command: [\"run\", \"--config=${CFG}\"]\n", ""), "--config", "${CFG}"),
            (agent("    entrypoint: [\"/bin/sh\", \"-c\", \"replicatoor run $$EXTRA\"]\n", ""), "compose", "shell"),
            (agent("", "      <<: *extra\n"), "REPLICATOOR_DANGEROUSLY_TRUST_RPC", "${TRUST}"),
            (agent("", "      REPLICATOOR_CONFIRMATIONS: ${N:-2}\n"), "REPLICATOOR_CONFIRMATIONS", "${N}"),
            (agent("    env_file: node.env\n", ""), "compose", "node.env"),
            (agent("    command: [\"run\", \"--jitter-ms\", \"${J}\"]\n", ""), "--jitter-ms", "${J}"),
        ];
        for (yaml, setting, source) in cases {
            let r = check(&app_compose(&yaml, &[])).unwrap();
            assert!(
                r.unmeasured.iter().any(|u| u.setting == setting && u.source.contains(source)),
                "{setting} ({source}) not flagged in\n{yaml}\n{:?}",
                r.unmeasured
            );
        }
        // A literal switch is measured, and shows as measured (the audit's trust mode and findings judge it).
        let r = check(&app_compose(&agent("    command: [\"run\", \"--dangerously-trust-rpc\"]\n", ""), &[])).unwrap();
        assert!(r.unmeasured.is_empty() && r.measured == ["agent: --dangerously-trust-rpc"], "{r:?}");
        // Transport from the operator, in any form, is not a finding; nor is PCCS (transport: collateral is
        // signed by Intel).
        let yaml =
            agent("    command: [\"run\", \"--beacon-url\", \"${URL}\"]\n", "      REPLICATOOR_PCCS_URL: ${PCCS}\n");
        let r = check(&app_compose(&yaml, &["REPLICATOOR_SENDER_KEY"])).unwrap();
        assert!(r.unmeasured.is_empty(), "{:?}", r.unmeasured);
        assert!(r.operator_provided.contains(&"agent: --beacon-url".to_string()), "{:?}", r.operator_provided);
        // The shipped example: nothing security-relevant is the operator's.
        let example = include_str!("../../../examples/dstack/docker-compose.yml");
        let r = check(&app_compose(example, &["REPLICATOOR_RPC_URL", "REPLICATOOR_SENDER_KEY"])).unwrap();
        assert!(r.unmeasured.is_empty(), "{:?}", r.unmeasured);
        assert_eq!(r.trust_mode(), "beacon-light-client");
        assert!(r.self_measured);
    }
}
