//! The words of the compose reader's sentences (`outside`) and of an operator's value's `source`, and
//! nothing else. Not on the trust path (not counted, TRUST.md section 4): `reader.rs` decides whether a
//! sentence is said (any sentence about the agent's service refuses the configuration,
//! `config/measured.rs`) and whether a value is the operator's (`Value::Operator`, whatever its
//! `source` says); these only phrase them.

use crate::yaml::Node;

/// The `source` of a variable `allowed_envs` lists.
pub(super) const ALLOWED: &str = "listed in allowed_envs: the operator may set it";
/// The `source` of a variable `environment` names without a value.
pub(super) const PASSED: &str = "passed through from the operator's environment (no value in the compose)";

/// `${A}, ${B} substituted from the operator's environment`.
pub(super) fn substituted(vars: &[String]) -> String {
    format!("{} substituted from the operator's environment", braced(vars))
}

fn braced(vars: &[String]) -> String {
    vars.iter().map(|v| format!("${{{v}}}")).collect::<Vec<_>>().join(", ")
}

pub(super) fn runs_before_compose(script: &str) -> String {
    format!(
        "app-compose.json's {script} runs before Compose, with the operator's variables, and can change what the \
         services get; it is not read here"
    )
}

pub(super) fn launcher_variable(name: &str) -> String {
    format!(
        "allowed_envs lists {name}, which Dstack's launcher or Compose reads itself: the operator can change how \
         the compose runs"
    )
}

pub(super) fn includes(value: &Node) -> String {
    format!(
        "the compose file includes {:?}: included files are not part of the measured compose, and their services \
         are not read here",
        texts(value)
    )
}

fn texts(node: &Node) -> Vec<String> {
    match node {
        Node::Str(text) | Node::Scalar(text) => vec![text.clone()],
        Node::Seq(items) => items.iter().flat_map(texts).collect(),
        Node::Map(entries) => entries.iter().flat_map(|(_, v)| texts(v)).collect(),
        _ => Vec::new(),
    }
}

pub(super) fn built(service: &str) -> String {
    format!("service {service} is built at deploy time (build): the code that runs is not pinned by the compose")
}

pub(super) fn named_by_operator(at: &str, entry: &str) -> String {
    format!("{at} entry {entry:?} takes its name from the operator's environment: it can set any variable")
}

pub(super) fn substituted_before_split(at: &str, text: &str, vars: &[String]) -> String {
    format!(
        "{at} is the string {text:?}: Compose substitutes {} before splitting it into arguments, so the operator \
         can add any argument",
        braced(vars)
    )
}

pub(super) fn extends_other_file(service: &str, base: &str, file: &str) -> String {
    format!(
        "service {service} extends service {base} of {file:?}, a file outside the measured compose: any of its \
         values may be the operator's"
    )
}
