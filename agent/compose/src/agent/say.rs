//! The words of the agent reader's errors and sentences, and nothing else. Not on the trust path (not
//! counted, TRUST.md section 4): `agent.rs` decides whether an error is returned or a sentence said
//! (any sentence in `outside` refuses the configuration, `config/measured.rs`); these only phrase them.

use super::Origin;
use crate::reader::{ComposeError, Service, Value};

fn names<'a>(services: impl IntoIterator<Item = &'a Service>) -> String {
    services.into_iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
}

pub(super) fn no_agent(services: &[Service]) -> ComposeError {
    ComposeError::Shape(format!(
        "no service runs the replicatoor agent (none sets a REPLICATOOR_* variable or names replicatoor in its \
         image, entrypoint or command); services: {}",
        names(services)
    ))
}

pub(super) fn several_agents(candidates: &[&Service]) -> ComposeError {
    ComposeError::Shape(format!(
        "several services may be the replicatoor agent ({}): the agent's must be the only service that sets a \
         REPLICATOOR_* variable or names replicatoor",
        names(candidates.iter().copied())
    ))
}

/// The sentence for a `--config` file the compose names.
pub(super) fn config_file(origin: &Origin) -> String {
    let value = match &origin.value {
        Value::Literal { value } => format!("{value:?}"),
        Value::Operator { source } => source.clone(),
    };
    format!(
        "settings may also come from the TOML file named by {} ({value}), which this reader does not see",
        origin.place
    )
}

/// What a shell script expands, for the sentence: its `$NAME`s, or that it is shell syntax.
pub(super) fn expands(script: &str) -> String {
    let vars: Vec<String> = script
        .match_indices('$')
        .filter_map(|(i, _)| {
            let rest = script[i + 1..].trim_start_matches('{');
            let n = rest.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
            (n > 0).then(|| format!("${}", &rest[..n]))
        })
        .collect();
    if vars.is_empty() {
        "interprets its command".into()
    } else {
        format!("expands {}", vars.join(", "))
    }
}
