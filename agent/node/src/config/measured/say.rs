//! The words of a setting's refusal when the operator's value differs from the measured compose's, and
//! nothing else. Not on the trust path (not counted, TRUST.md section 4): `measured.rs` decides that the
//! values differ and refuses; this only phrases it.

use replicatoor_compose::agent::Origin;

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
