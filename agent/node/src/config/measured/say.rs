//! The words of the refusals `measured.rs` makes, and nothing else. Not on the trust path (not counted,
//! TRUST.md section 4): `measured.rs` decides when to refuse, and refuses whatever these say.

use replicatoor_compose::agent::Origin;
use std::path::Path;

pub(super) fn other_socket(socket: &Path) -> String {
    format!("the measured compose names a guest agent socket other than {}", socket.display())
}

/// clap's refusal of the measured compose's security settings, its first line.
pub(super) fn does_not_parse(e: &clap::Error) -> String {
    let reason = e.to_string().lines().next().unwrap_or_default().to_string();
    format!("the measured compose's agent settings do not parse: {reason}")
}

/// One of the compose reader's `outside` sentences.
pub(super) fn outside(how: &str) -> String {
    format!("the measured compose lets the operator reach the agent's settings: {how}")
}

pub(super) fn left_to_operator(origin: &Origin, source: &str) -> String {
    format!("the measured compose leaves it to the operator ({}: {source})", origin.place)
}

pub(super) fn not_a_switch(origin: &Origin, value: &str) -> String {
    format!("the measured compose sets it to {value:?} ({}), not true or false", origin.place)
}

/// The `--config` file given differs from the one the measured compose names (`measured`).
pub(super) fn config_file(measured: Option<&Path>) -> String {
    match measured {
        None => "a --config file is given, but the measured compose names none".into(),
        Some(p) => format!("the measured compose names the config file {}", p.display()),
    }
}

/// `"x" here (...), but the measured compose says "y" (--flag in command)`, or leaves it at its default.
pub(super) fn differs(mine: Option<&toml::Value>, theirs: Option<&toml::Value>, origin: Option<&Origin>) -> String {
    let theirs = match (theirs, origin) {
        (Some(v), Some(o)) => format!("says {} ({})", show(Some(v)), o.place),
        _ => format!("leaves it at its default {}", show(theirs)),
    };
    format!("{} here (flag, environment or config file), but the measured compose {theirs}", show(mine))
}

/// A setting's value in an error: one line, and short (a pinned deployment is a whole TOML document).
fn show(v: Option<&toml::Value>) -> String {
    let text = match v {
        None => return "unset".into(),
        Some(toml::Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    };
    let short: String = text.chars().take(72).collect();
    if short.len() < text.len() {
        format!("{short}…")
    } else {
        text
    }
}
