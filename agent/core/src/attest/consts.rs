//! Fixed facts every quote module shares (a leaf: the quote reader and the verifier use them, and
//! it uses none of them): Intel's root, the simulated root, the TDX TEE type,
//! and the size cap.

/// Intel's SGX Root CA (CN=Intel SGX Root CA, SHA-256 fingerprint 44:A0:19:6B:…:74:D3), the same
/// certificate dcap-qvl trusts; public data.
pub const INTEL_ROOT_CA_DER: &[u8] = include_bytes!("intel_sgx_root_ca.der");

/// The simulated PKI's root certificate (DER). Public: anyone can derive it from the testkit's
/// public seed (a testkit test checks they agree). Kept here so a production verifier names a
/// simulated quote as such (refusal 8) instead of calling it invalid.
pub const SIMULATED_ROOT_CA_DER: &[u8] = include_bytes!("simulated_root_ca.der");

/// TDX TEE type in the quote header.
pub const TEE_TYPE_TDX: u32 = 0x81;

/// Largest quote we parse (the contract caps calldata at 16 KiB as well): the compact decoder's cap,
/// so that a rebuilt quote is never refused for its size.
pub const MAX_QUOTE_LEN: usize = replicatoor_compact_quote::MAX_QUOTE_LEN;
