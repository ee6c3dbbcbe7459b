//! Shared helpers for the fixture tests: file access, raw-snappy and the little YAML the fixtures use.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

pub fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

pub fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(fixture_path(rel)).unwrap_or_else(|e| panic!("read fixture {rel}: {e}"))
}

pub fn fixture_str(rel: &str) -> String {
    String::from_utf8(fixture(rel)).expect("utf-8 fixture")
}

/// consensus-spec-tests `.ssz_snappy` files are raw (block) snappy, not the framed format.
pub fn snappy(rel: &str) -> Vec<u8> {
    snap::raw::Decoder::new().decompress_vec(&fixture(rel)).expect("raw snappy")
}

pub fn hex_bytes(s: &str) -> Vec<u8> {
    hex::decode(s.trim().trim_start_matches("0x")).expect("hex")
}

pub fn root(s: &str) -> replicatoor_beacon::Root {
    replicatoor_beacon::Root::from_slice(&hex_bytes(s))
}

/// The portal-spec-tests YAML: `content_key: "0x.."` and `content_value: "0x..\` continued over
/// lines ending in a backslash. Returns the content value bytes.
pub fn portal_content_value(rel: &str) -> Vec<u8> {
    let text = fixture_str(rel);
    let start = text.find("content_value:").expect("content_value") + "content_value:".len();
    let hex: String = text[start..].chars().filter(|c| c.is_ascii_hexdigit() || *c == 'x').collect();
    hex_bytes(&hex)
}

/// Split an SSZ `List[ByteList]` (offset table, then items).
pub fn ssz_list_of_byte_lists(bytes: &[u8]) -> Vec<&[u8]> {
    if bytes.is_empty() {
        return vec![];
    }
    let first = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    let n = first / 4;
    let offsets: Vec<usize> =
        (0..n).map(|i| u32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap()) as usize).collect();
    (0..n).map(|i| &bytes[offsets[i]..offsets.get(i + 1).copied().unwrap_or(bytes.len())]).collect()
}
