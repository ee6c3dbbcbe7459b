//! Compact quote v1 (PROTOCOL.md §3.9) decoding on the genuine fixtures: the well-known certificate
//! table PROTOCOL.md publishes, and strict decoding (the encoder's tests, with the published vectors,
//! are in `tests/compact_encode.rs`).

use replicatoor_compact_quote::{self as compact, CompactError, WELL_KNOWN};
use replicatoor_testkit::dstack;
use sha2::{Digest, Sha256};
use std::path::Path;

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[test]
fn well_known_table_is_the_published_one() {
    let table: Vec<(u8, String)> = WELL_KNOWN.iter().map(|(id, der)| (*id, sha256(der))).collect();
    assert_eq!(
        table,
        vec![
            (0x01, "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3".to_string()),
            (0x02, "22eb770dca215b607b5ccfc21a672b1da5cc660b1ad0365020567979edcaa0e1".to_string()),
            (0x03, "13b2dccef8fc4ec977ee5249743b0f758ebd1e28d768b2e1e12bc348adaa09fb".to_string()),
        ]
    );
}

/// PROTOCOL.md Appendix A gives the exact DER of every well-known id, so an outside decoder needs
/// no copy of ours: it must be the decoder's table byte for byte, every id, nothing more.
#[test]
fn protocol_appendix_a_is_the_well_known_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../PROTOCOL.md");
    let doc = std::fs::read_to_string(&path).expect("read PROTOCOL.md");
    let appendix = doc.split("## Appendix A.").nth(1).expect("PROTOCOL.md has Appendix A");
    let mut published: Vec<(u8, Vec<u8>)> = Vec::new();
    for part in appendix.split("\n### A.").skip(1) {
        let id_hex = part.split("Id `0x").nth(1).and_then(|s| s.get(..2)).expect("a heading names its id");
        let id = u8::from_str_radix(id_hex, 16).expect("id is hex");
        let body = part.split("```").nth(1).expect("a fenced hex block follows the heading");
        let hex: String = body.split_whitespace().collect();
        published.push((id, hex::decode(&hex).expect("Appendix A is hex")));
    }
    let table: Vec<(u8, Vec<u8>)> = WELL_KNOWN.iter().map(|(id, der)| (*id, der.to_vec())).collect();
    assert_eq!(published.len(), table.len(), "one appendix entry per well-known id");
    for ((pid, pder), (tid, tder)) in published.iter().zip(&table) {
        assert_eq!(pid, tid, "appendix ids in table order");
        assert!(pder == tder, "appendix DER of id {pid:#04x} differs from the decoder's table");
    }
}

#[test]
fn decoding_is_strict() {
    let c = compact::encode(&dstack::quote()).unwrap();
    let leaf_at = c.len() - 2 - 2 - 1268 - 3; // id 0, be16 length, DER, ids 2 and 1, padding
    assert_eq!(&c[leaf_at..leaf_at + 3], &[0x00, 0x04, 0xf4], "leaf carried as DER, 1268 bytes");
    let with = |at: usize, b: &[u8]| {
        let mut m = c.clone();
        m.splice(at..at + b.len(), b.iter().copied());
        compact::decode(&m)
    };
    let mut trailing = c.clone();
    trailing.push(0);
    assert_eq!(compact::decode(&trailing), Err(CompactError::TrailingBytes(1)));
    assert!(matches!(compact::decode(&c[..c.len() - 1]), Err(CompactError::Truncated { .. })));
    assert_eq!(with(4, &[2]), Err(CompactError::UnknownVersion(2)));
    assert!(matches!(with(5, &[3, 0]), Err(CompactError::Header(_))), "SGX version");
    assert!(matches!(with(5 + 4, &[0]), Err(CompactError::Header(_))), "TEE type");
    let count_at = leaf_at - 1;
    assert!(matches!(with(count_at, &[0]), Err(CompactError::OutOfRange { field: "certificate count", .. })));
    assert!(matches!(with(count_at, &[9]), Err(CompactError::OutOfRange { field: "certificate count", .. })));
    assert_eq!(with(c.len() - 4, &[0x04]), Err(CompactError::UnknownId { index: 1, id: 4 }));
    assert!(matches!(with(leaf_at + 1, &[0, 0]), Err(CompactError::OutOfRange { field: "DER length", .. })));
    assert!(matches!(with(c.len() - 2, &[0xff, 0xff]), Err(CompactError::TooLarge(_))));
    // A well-known certificate inline is not the canonical form.
    let mut inline_root = c[..c.len() - 3].to_vec();
    inline_root.extend_from_slice(&[0x00, 0x02, 0x93]);
    inline_root.extend_from_slice(WELL_KNOWN[0].1);
    inline_root.extend_from_slice(&[0x00, 0x46]);
    assert_eq!(WELL_KNOWN[0].1.len(), 0x293);
    assert_eq!(compact::decode(&inline_root), Err(CompactError::NotCanonical { index: 2, id: 1 }));
    // Magic but garbage: malformed, never a panic.
    assert!(compact::decode(b"RPQC").is_err());
}
