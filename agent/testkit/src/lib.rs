//! Dev and test machinery, never part of a production build: the SIMULATED Intel PKI
//! ([`sim_pki`]) and simulated TDs ([`simulated`]) whose quotes go through the very same dcap-qvl
//! verification as genuine ones, under a public, well-known root. Anyone can make these quotes:
//! they prove nothing. The `replicatoor` binary links this crate only with its `simulated` feature.
//! Also the suites' shared test doubles ([`doubles`]).

pub mod beacon;
pub mod doubles;
pub mod dstack;
pub mod sim_pki;
pub mod simulated;

/// The project's shared test fixtures (`tests/fixtures/`, each folder's README says where it comes from).
pub fn fixture(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(path)
}

/// A fixture's bytes, naming the file when it cannot be read.
pub fn read_fixture(path: &str) -> Vec<u8> {
    let p = fixture(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The EIP-712 `Delivery` record of these fields, in `deliverSecret`'s order: for suites that sign,
/// forge or re-sign a delivery by hand (holders build it from the sealed delivery, `delivery.rs`).
pub fn delivery_record(
    request_id: alloy::primitives::U256,
    request: alloy::primitives::B256,
    policy: alloy::primitives::B256,
    os_ref: alloy::primitives::B256,
    app_ref: alloy::primitives::B256,
    enc: &[u8],
    ct: &[u8],
) -> replicatoor_core::crypto::eip712::Delivery {
    replicatoor_core::crypto::eip712::Delivery {
        requestId: request_id,
        request,
        policy,
        osRef: os_ref,
        appRef: app_ref,
        encapsulatedKey: enc.to_vec().into(),
        ciphertext: ct.to_vec().into(),
    }
}

/// The EIP-712 `Delivery` record a sealed delivery's signature covers: for suites that forge or re-sign one.
pub fn record_of(d: &replicatoor_core::delivery::SignedDelivery) -> replicatoor_core::crypto::eip712::Delivery {
    delivery_record(d.request_id, d.request, d.policy, d.os_ref, d.app_ref, &d.encapsulated_key, &d.ciphertext)
}
