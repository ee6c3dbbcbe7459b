//! What the owner publishes about a reference (`ReferenceDescribed`, PROTOCOL.md §4.5) and what a
//! TD's own event log says about its OS: the OS description document, and a readable rendering of
//! every Dstack runtime (RTMR3) event. Pure; used by `audit`, `measure` and `admin propose-os`.

use serde::{Deserialize, Serialize};

/// The description an OS reference's proposal publishes: UTF-8 JSON, both fields optional, unknown
/// fields ignored (so later versions may add some). The contract checks nothing about it; the
/// audit compares `os_image_hash` with the `os-image-hash` event of every accepted quote's log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsDescription {
    /// Dstack's OS image hash (the `os-image-hash` event's payload), lowercase hex without 0x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_image_hash: Option<String>,
    /// Release note or URL of the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

/// Why an OS description is not usable.
#[derive(Debug, thiserror::Error)]
pub enum DescriptionError {
    #[error("OS description is not the JSON document of PROTOCOL.md §4.5: {0}")]
    Json(#[from] serde_json::Error),
    #[error("os_image_hash {0:?} is not hex")]
    Hex(String),
}

impl OsDescription {
    /// A description with the hash normalised (lowercase, no 0x); `None` if there is nothing to say.
    pub fn new(os_image_hash: Option<&str>, release: Option<&str>) -> Result<Option<Self>, DescriptionError> {
        let os_image_hash = os_image_hash.map(normalise_hex).transpose()?;
        let release = release.filter(|r| !r.is_empty()).map(str::to_string);
        Ok((os_image_hash.is_some() || release.is_some()).then_some(OsDescription { os_image_hash, release }))
    }

    /// The bytes to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Read published bytes (owner-supplied: validated, never trusted).
    pub fn parse(bytes: &[u8]) -> Result<Self, DescriptionError> {
        let d: OsDescription = serde_json::from_slice(bytes)?;
        let os_image_hash = d.os_image_hash.as_deref().map(normalise_hex).transpose()?;
        Ok(OsDescription { os_image_hash, ..d })
    }
}

fn normalise_hex(s: &str) -> Result<String, DescriptionError> {
    let h = s.trim().trim_start_matches("0x").to_ascii_lowercase();
    if h.is_empty() || hex::decode(&h).is_err() {
        return Err(DescriptionError::Hex(s.to_string()));
    }
    Ok(h)
}

/// One Dstack runtime event, readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeEventView {
    pub name: String,
    /// The payload as text where Dstack writes text (JSON, file-system names), else lowercase hex;
    /// "" for markers without payload.
    pub value: String,
    /// What the event means, or "not a known Dstack event" (shown, never interpreted).
    pub meaning: &'static str,
}

/// What each current Dstack runtime event (RTMR3) means, and whether its payload is text.
fn known(name: &str) -> Option<(&'static str, bool)> {
    Some(match name {
        "system-preparing" => ("start of the system preparation (marker)", false),
        "app-id" => ("the app id", false),
        "compose-hash" => ("sha256 of the app-compose.json (the app reference's compose hash)", false),
        "instance-id" => ("this instance's id (empty with no_instance_id)", false),
        "boot-mr-done" => ("end of the boot-time measurements (marker)", false),
        "os-image-hash" => ("the OS image hash Dstack names the image by", false),
        "key-provider" => ("the key provider (KMS or local) and its identity, JSON", true),
        "storage-fs" => ("the file system of the encrypted data disk", true),
        "init-script-hash" => ("sha256 of the app's init script", false),
        "system-ready" => ("the system handed over to the app (marker)", false),
        n if n.starts_with("gpu-") => ("a GPU attestation value (confidential GPUs)", true),
        _ => return None,
    })
}

/// Render one runtime event.
pub fn runtime_event(name: &str, payload: &[u8]) -> RuntimeEventView {
    let (meaning, text) = known(name).unwrap_or(("not a known Dstack event", false));
    let printable = std::str::from_utf8(payload).ok().filter(|s| s.chars().all(|c| !c.is_control()));
    let value = match printable {
        Some(s) if text => s.to_string(),
        _ => hex::encode(payload),
    };
    RuntimeEventView { name: name.to_string(), value, meaning }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_descriptions_round_trip_and_normalise() {
        let d = OsDescription::new(Some("0xABCD"), Some("https://example.invalid/r1")).unwrap().unwrap();
        assert_eq!(d.os_image_hash.as_deref(), Some("abcd"));
        assert_eq!(OsDescription::parse(&d.to_bytes()).unwrap(), d);
        assert!(OsDescription::new(None, Some("")).unwrap().is_none(), "nothing to publish");
        assert!(OsDescription::new(Some("xyz"), None).is_err());
        assert!(OsDescription::parse(br#"{"os_image_hash":"zz"}"#).is_err());
        assert!(OsDescription::parse(b"not json").is_err());
        let later = OsDescription::parse(br#"{"os_image_hash":"AB","future":1}"#).unwrap();
        assert_eq!(later.os_image_hash.as_deref(), Some("ab"), "unknown fields are ignored");
    }

    #[test]
    fn every_current_dstack_event_is_rendered() {
        let kp = runtime_event("key-provider", br#"{"name":"kms","id":"30"}"#);
        assert_eq!(kp.value, r#"{"name":"kms","id":"30"}"#);
        assert_eq!(runtime_event("storage-fs", b"zfs").value, "zfs");
        assert_eq!(runtime_event("os-image-hash", &[0x07, 0xa2]).value, "07a2");
        assert_eq!(runtime_event("compose-hash", b"zfs").value, "7a6673", "hashes are hex even if printable");
        assert_eq!(runtime_event("boot-mr-done", b"").value, "");
        assert!(runtime_event("gpu-evidence", b"x").meaning.contains("GPU"));
        assert_eq!(runtime_event("key-provider", b"\x1b[31m").value, "1b5b33316d", "control characters stay hex");
        let unknown = runtime_event("surprise", b"hi");
        assert_eq!((unknown.value.as_str(), unknown.meaning), ("6869", "not a known Dstack event"));
        for name in [
            "system-preparing",
            "app-id",
            "compose-hash",
            "instance-id",
            "boot-mr-done",
            "os-image-hash",
            "key-provider",
            "storage-fs",
            "init-script-hash",
            "gpu-0",
            "system-ready",
        ] {
            assert_ne!(runtime_event(name, b"").meaning, "not a known Dstack event", "{name}");
        }
    }
}
