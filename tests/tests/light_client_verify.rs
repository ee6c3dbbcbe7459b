//! `replicatoor light-client verify` on recorded mainnet data (agent/beacon/tests/fixtures, see its
//! README for origins): verified data prints its execution blocks; tampered data exits 4 with the
//! precise reason; without `--checkpoint` it runs only with `--trust-bootstrap`, and exits 5.

use replicatoor_tests::root;
use serde_json::Value;
use std::{path::PathBuf, process::Command};

fn fixture(p: &str) -> String {
    root().join("agent/beacon/tests/fixtures").join(p).display().to_string()
}

fn verify(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_replicatoor-dev"))
        .args(["light-client", "verify", "--network", "mainnet"])
        .args(args)
        .output()
        .expect("run replicatoor");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

const HELIOS_CHECKPOINT: &str = "0x5afc212a7924789b2bc86acad3ab3a6ffb1f6e97253ea50bee7f4f51422c9275";

#[test]
fn capella_json_set_verifies_to_helios_blocks() {
    let (code, out, err) = verify(&[
        "--checkpoint",
        HELIOS_CHECKPOINT,
        "--bootstrap",
        &fixture("mainnet-capella-helios/bootstrap.json"),
        "--updates",
        &fixture("mainnet-capella-helios/updates.json"),
        "--finality-update",
        &fixture("mainnet-capella-helios/finality.json"),
        "--optimistic-update",
        &fixture("mainnet-capella-helios/optimistic.json"),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(r["trust_source"], "checkpoint");
    assert_eq!(r["sync_committee_periods"], serde_json::json!([862, 863, 864, 865, 866, 867]));
    assert_eq!(r["finalized"]["beacon_slot"], 7109344);
    assert_eq!(r["optimistic"]["execution_block_number"], 17923113);
}

#[test]
fn deneb_to_electra_ssz_set_verifies_and_tampering_is_refused() {
    let dir = "mainnet-deneb-electra-boundary";
    let boot = std::fs::read_dir(root().join("agent/beacon/tests/fixtures").join(dir).join("eth_call_electra"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().contains("bootstrap"))
        .unwrap();
    let boot = boot.display().to_string();
    let u1421 =
        fixture(&format!("{dir}/eth_call_electra/eth_v1_beacon_light_client_updates_start_period_1421_count_1.ssz"));
    let u1422 = fixture(&format!(
        "{dir}/eth_blockNumber_electra/eth_v1_beacon_light_client_updates_start_period_1422_count_1.ssz"
    ));
    // Without a checkpoint, the command refuses to run unless told to trust the bootstrap; then it
    // warns and exits 5, never 0: nothing anchors the data to the real chain.
    let (code, _, err) = verify(&["--bootstrap", &boot, "--updates", &u1421, "--updates", &u1422, "--json"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--checkpoint") && err.contains("--trust-bootstrap"), "{err}");
    let (code, out, err) =
        verify(&["--trust-bootstrap", "--bootstrap", &boot, "--updates", &u1421, "--updates", &u1422, "--json"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("WARNING: --trust-bootstrap"), "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["finalized"]["execution_block_number"], 22432991);
    assert_eq!(
        r["finalized"]["execution_block_hash"],
        "0xd4c1a04e15667a6a012075daee220cf04a052a3491632572bfb0e5d90736b4cb"
    );
    assert_eq!(r["finalized"]["fork"], "electra");

    // An Electra update in an `updates` body: 8-byte length, 4-byte fork digest, then the SSZ
    // container, whose fixed part holds (after the attested header's offset, the next committee of
    // 512 × 48 + 48 bytes, its 6-deep branch, the finalized header's offset and the 7-deep finality
    // branch) the sync aggregate: 64 bytes of bits, then the 96-byte signature.
    const SIGNATURE: usize = 12 + 4 + (512 * 48 + 48) + 6 * 32 + 4 + 7 * 32 + 64;
    let tmp = std::env::temp_dir().join(format!("replicatoor-lc-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut bytes = std::fs::read(&u1422).unwrap();
    bytes[SIGNATURE + 10] ^= 0x01;
    let forged: PathBuf = tmp.join("forged.ssz");
    std::fs::write(&forged, &bytes).unwrap();
    let (code, _, err) = verify(&[
        "--trust-bootstrap",
        "--bootstrap",
        &boot,
        "--updates",
        &u1421,
        "--updates",
        forged.to_str().unwrap(),
    ]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("NOT verified") && err.to_lowercase().contains("signature"), "{err}");

    let (code, _, err) = verify(&["--checkpoint", HELIOS_CHECKPOINT, "--bootstrap", &boot, "--updates", &u1421]);
    assert_eq!(code, 4, "{err}");
    assert!(err.to_lowercase().contains("checkpoint"), "{err}");
    let _ = std::fs::remove_dir_all(&tmp);
}
