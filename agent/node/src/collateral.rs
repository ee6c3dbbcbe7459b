//! Collateral sources that do I/O: a directory of files (air-gapped auditors, offline operation)
//! and a PCCS with a disk cache. The trait they implement is the trust kernel's.
//!
//! Both are asked by [`CollateralKey`] (platform, PCK CA, TEE), read from a PCK chain already verified
//! against Intel's root. The PCCS source fetches exactly what that key selects and caches it only
//! after it passes its checks against the same root, under a name that holds the whole key: a junk
//! request can neither choose nor spoil what a genuine platform's quotes are verified with.

use dcap_qvl::{collateral::CollateralClient, configs::DefaultConfig, http::HttpClient, QuoteCollateralV3};
pub use replicatoor_core::attest::collateral::{
    fmspc_of, parse_rfc3339_utc, CollateralError, CollateralKey, CollateralSource, FixedCollateral, NoCollateral,
    Prepare, VerifiedPck,
};
use replicatoor_core::attest::pck::{check_collateral, CollateralCheckError};
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

/// Read one collateral file (dcap-qvl's `QuoteCollateralV3` JSON).
pub fn fixed_from_file(path: &Path) -> Result<FixedCollateral, CollateralError> {
    read_json(path).map(FixedCollateral)
}

/// The collateral source a node's settings name: a directory when given, else a PCCS (cached in
/// `cache_dir`), else none (genuine quotes then wait). Holders (`run`) and `preflight` get
/// collateral through this one choice.
pub fn source(
    dir: Option<&Path>,
    pccs_url: Option<&str>,
    cache_dir: &Path,
) -> Result<Box<dyn CollateralSource>, CollateralError> {
    Ok(match (dir, pccs_url) {
        (Some(d), _) => Box::new(DirCollateral::new(d)),
        (None, Some(url)) => Box::new(PccsCollateral::new(url, cache_dir)?),
        (None, None) => Box::new(NoCollateral),
    })
}

/// A directory of collateral files in dcap-qvl's `QuoteCollateralV3` JSON format (air-gapped
/// auditors, offline operation): `<fmspc>-<ca>-<tee>.json` (e.g. `b0c06f000000-platform-tdx.json`),
/// or `<fmspc>.json` for all of a platform's quotes. Whatever is found is checked against each
/// quote like any collateral.
pub struct DirCollateral {
    dir: PathBuf,
}

impl DirCollateral {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirCollateral { dir: dir.into() }
    }
}

impl CollateralSource for DirCollateral {
    fn collateral_for(&self, key: &CollateralKey) -> Result<QuoteCollateralV3, CollateralError> {
        for stem in [key.file_stem(), key.fmspc_hex()] {
            let path = self.dir.join(format!("{stem}.json"));
            if path.exists() {
                return read_json(&path);
            }
        }
        Err(CollateralError::Missing { key: key.to_string(), dir: self.dir.clone() })
    }
}

/// Collateral fetched from a PCCS (Intel PCS, or Phala's PCCS by default) and cached on disk per
/// [`CollateralKey`] until its `nextUpdate` (or a day, whichever is first). Stale or missing
/// collateral that cannot be fetched makes the request wait; it is never accepted stale.
pub struct PccsCollateral<H: HttpClient = dcap_qvl::http::ReqwestHttp> {
    url: String,
    client: CollateralClient<DefaultConfig, H>,
    dir: PathBuf,
    /// Key → when its last fetch failed: a PCCS that is down (or a platform it does not know) must
    /// not be called on every retry. Only keys still waiting are kept, and keys come only from PCK
    /// certificates Intel signed, so the map stays as small as the set of real platforms asked for.
    failed: std::sync::Mutex<std::collections::HashMap<CollateralKey, u64>>,
}

/// Wait before a failed fetch for the same key is tried again. Constant: a failing key costs one
/// PCCS call a minute, and a real one must recover within a minute of the PCCS coming back.
const FETCH_BACKOFF: Duration = Duration::from_secs(60);

/// Refetch cached collateral at least this often, even before its nextUpdate (CRLs change too).
const MAX_CACHE_AGE: u64 = 24 * 3600;

/// A fetch that has not answered by then failed.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(serde::Serialize, serde::Deserialize)]
struct CacheMeta {
    fetched_at: u64,
    next_update: u64,
    /// The cached collateral's TCB evaluation (0 in caches written before it was recorded, which
    /// then count as stale under any floor).
    #[serde(default)]
    tcb_evaluation_data_number: u32,
}

impl PccsCollateral {
    /// A PCCS source over HTTPS (dcap-qvl's client), caching in `cache_dir`.
    pub fn new(url: impl Into<String>, cache_dir: impl Into<PathBuf>) -> Result<Self, CollateralError> {
        let url = url.into();
        let client = CollateralClient::with_default_http(url.clone())
            .map_err(|e| CollateralError::Fetch { url: url.clone(), reason: format!("{e:#}") })?;
        Ok(Self::with_client(url, client, cache_dir))
    }
}

impl<H: HttpClient> PccsCollateral<H> {
    /// A PCCS source over any HTTP client (tests use a fake PCCS).
    pub fn with_http(http: H, url: impl Into<String>, cache_dir: impl Into<PathBuf>) -> Self {
        let url = url.into();
        Self::with_client(url.clone(), CollateralClient::new(http, url), cache_dir)
    }

    fn with_client(url: String, client: CollateralClient<DefaultConfig, H>, cache_dir: impl Into<PathBuf>) -> Self {
        PccsCollateral { url, client, dir: cache_dir.into(), failed: Default::default() }
    }

    fn data_path(&self, key: &CollateralKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.file_stem()))
    }

    fn meta_path(&self, key: &CollateralKey) -> PathBuf {
        self.dir.join(format!("{}.meta.json", key.file_stem()))
    }

    /// Whether the cache can answer for `key` at `now` under the TCB evaluation floor `min_tcb_eval`:
    /// collateral older than the floor (e.g. cached before a TCB recovery) is refetched.
    fn fresh(&self, key: &CollateralKey, now: u64, min_tcb_eval: u32) -> bool {
        let Ok(text) = std::fs::read_to_string(self.meta_path(key)) else { return false };
        let Ok(m) = serde_json::from_str::<CacheMeta>(&text) else { return false };
        now < m.next_update
            && now < m.fetched_at.saturating_add(MAX_CACHE_AGE)
            && m.tcb_evaluation_data_number >= min_tcb_eval
    }

    /// Fetch what `pck`'s key selects (never what the quote's unverified parts would), check it
    /// against the root `pck` was verified with, and only then cache it.
    async fn fetch(&self, pck: &VerifiedPck, now: u64, min_tcb_eval: u32) -> Result<(), CollateralError> {
        let err = |reason: String| CollateralError::Fetch { url: self.url.clone(), reason };
        let key = pck.key();
        let fmspc = hex::encode_upper(key.fmspc);
        let for_sgx = key.tee == replicatoor_core::attest::pck::Tee::Sgx;
        let c = tokio::time::timeout(
            FETCH_TIMEOUT,
            self.client.fetch_for_fmspc_without_pck_chain(&fmspc, key.ca_id(), for_sgx),
        )
        .await
        .map_err(|_| err(format!("no answer within {} s", FETCH_TIMEOUT.as_secs())))?
        .map_err(|e| err(format!("{e:#}")))?;
        match check_collateral(&c, pck, now) {
            // A revoked PCK chain is this quote's verdict; the collateral that says so is sound.
            Ok(_) | Err(CollateralCheckError::PckRevoked) => {}
            Err(CollateralCheckError::Fault(fault)) => {
                return Err(CollateralError::Rejected { url: self.url.clone(), key: key.to_string(), fault })
            }
        }
        let (next_update, tcb_evaluation_data_number) = meta_of(&c)
            .ok_or_else(|| err("collateral has no parseable nextUpdate or tcbEvaluationDataNumber".into()))?;
        let json = serde_json::to_vec(&c).map_err(|e| err(e.to_string()))?;
        let meta = CacheMeta { fetched_at: now, next_update, tcb_evaluation_data_number };
        let meta = serde_json::to_vec(&meta).map_err(|e| err(e.to_string()))?;
        let io = |e: std::io::Error| CollateralError::Unreadable { path: self.dir.clone(), reason: e.to_string() };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        crate::install::install_atomically(&self.data_path(key), &json).map_err(io)?;
        crate::install::install_atomically(&self.meta_path(key), &meta).map_err(io)?;
        tracing::info!(target: "replicatoor::collateral", key = %key, next_update, tcb_evaluation_data_number, url = %self.url, "collateral fetched, checked and cached");
        if tcb_evaluation_data_number < min_tcb_eval {
            // Cached all the same (it is sound, and the floor may be lowered); the request waits.
            return Err(err(format!(
                "the PCCS serves TCB evaluation {tcb_evaluation_data_number} for {key}, older than the policy's \
                 minimum {min_tcb_eval}"
            )));
        }
        Ok(())
    }
}

impl<H: HttpClient + Send + Sync> CollateralSource for PccsCollateral<H> {
    fn collateral_for(&self, key: &CollateralKey) -> Result<QuoteCollateralV3, CollateralError> {
        let path = self.data_path(key);
        if !path.exists() {
            return Err(CollateralError::Missing { key: key.to_string(), dir: self.dir.clone() });
        }
        read_json(&path)
    }

    fn prepare<'a>(&'a self, pck: &'a VerifiedPck, now: u64, min_tcb_eval: u32) -> Prepare<'a> {
        Box::pin(async move {
            let key = pck.key();
            if self.fresh(key, now, min_tcb_eval) {
                return Ok(());
            }
            let wait = FETCH_BACKOFF.as_secs();
            let failed_at = self.failed.lock().ok().and_then(|mut m| {
                m.retain(|_, at| now < at.saturating_add(wait));
                m.get(key).copied()
            });
            if let Some(at) = failed_at {
                return Err(CollateralError::Fetch {
                    url: self.url.clone(),
                    reason: format!("fetch for {key} failed at {at}; next try after {wait} s"),
                });
            }
            let result = self.fetch(pck, now, min_tcb_eval).await;
            if let Ok(mut m) = self.failed.lock() {
                if result.is_err() {
                    m.insert(key.clone(), now);
                } else {
                    m.remove(key);
                }
            }
            result
        })
    }
}

/// The earliest `nextUpdate` of the TCB info and QE identity (unix seconds), and the older of their
/// `tcbEvaluationDataNumber`s.
fn meta_of(c: &QuoteCollateralV3) -> Option<(u64, u32)> {
    let fields = |json: &str| -> Option<(u64, u32)> {
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        let next_update = parse_rfc3339_utc(v.get("nextUpdate")?.as_str()?)?;
        let eval = u32::try_from(v.get("tcbEvaluationDataNumber")?.as_u64()?).ok()?;
        Some((next_update, eval))
    };
    let (tcb, qe) = (fields(&c.tcb_info)?, fields(&c.qe_identity)?);
    Some((tcb.0.min(qe.0), tcb.1.min(qe.1)))
}

fn read_json(path: &Path) -> Result<QuoteCollateralV3, CollateralError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CollateralError::Unreadable { path: path.to_owned(), reason: e.to_string() })?;
    serde_json::from_str(&text)
        .map_err(|e| CollateralError::Unreadable { path: path.to_owned(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_intel_timestamps() {
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_utc("2025-07-01T00:00:00Z"), Some(1_751_328_000));
        assert_eq!(parse_rfc3339_utc("2025-07-19T10:00:35.123Z"), Some(1_752_919_235));
        assert_eq!(parse_rfc3339_utc("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        assert_eq!(parse_rfc3339_utc("2025-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_utc("garbage"), None);
    }

    #[test]
    fn meta_of_genuine_collateral() {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/dcap-qvl-samples/tdx_quote_collateral.json"
        ));
        let c: QuoteCollateralV3 = serde_json::from_str(text).unwrap();
        let (nu, eval) = meta_of(&c).unwrap();
        // min(tcbInfo 2025-07-19T10:16:03Z, qeIdentity 2025-07-19T10:32:27Z).
        assert_eq!(nu, 1_752_920_163);
        // Both say tcbEvaluationDataNumber 17.
        assert_eq!(eval, 17);
    }

    const TDX_NOW: u64 = 1_751_328_000;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dcap-qvl-samples").join(name))
            .unwrap()
    }

    fn genuine_pck() -> VerifiedPck {
        let quote = dcap_qvl::quote::Quote::parse(&fixture("tdx_quote")).unwrap();
        replicatoor_core::attest::pck::verify_pck_chain(
            &quote,
            replicatoor_core::attest::verifier::INTEL_ROOT_CA_DER,
            TDX_NOW,
        )
        .unwrap()
    }

    fn scratch(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("replicatoor-pccs-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A PCCS that answers every request from one collateral, and records what it was asked.
    #[derive(Clone)]
    struct FakePccs {
        collateral: QuoteCollateralV3,
        asked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl FakePccs {
        fn serving(file: &str) -> FakePccs {
            let collateral = serde_json::from_slice(&fixture(file)).unwrap();
            FakePccs { collateral, asked: Default::default() }
        }
        fn asked(&self) -> Vec<String> {
            self.asked.lock().unwrap().clone()
        }
    }

    impl HttpClient for FakePccs {
        async fn get(&self, url: &str) -> anyhow::Result<dcap_qvl::http::HttpResponse> {
            self.asked.lock().unwrap().push(url.to_string());
            let c = &self.collateral;
            let (header, body) = if url.contains("/pckcrl?") {
                (Some(("SGX-PCK-CRL-Issuer-Chain", &c.pck_crl_issuer_chain)), c.pck_crl.clone())
            } else if url.contains("/tcb?") {
                let body =
                    format!("{{\"tcbInfo\":{},\"signature\":\"{}\"}}", c.tcb_info, hex::encode(&c.tcb_info_signature));
                (Some(("TCB-Info-Issuer-Chain", &c.tcb_info_issuer_chain)), body.into_bytes())
            } else if url.contains("/qe/identity") {
                let body = format!(
                    "{{\"enclaveIdentity\":{},\"signature\":\"{}\"}}",
                    c.qe_identity,
                    hex::encode(&c.qe_identity_signature)
                );
                (Some(("SGX-Enclave-Identity-Issuer-Chain", &c.qe_identity_issuer_chain)), body.into_bytes())
            } else if url.ends_with("/rootcacrl") {
                (None, hex::encode(&c.root_ca_crl).into_bytes())
            } else {
                anyhow::bail!("unexpected request {url}")
            };
            let headers = header.map(|(k, v)| (k.to_string(), v.clone())).into_iter().collect();
            Ok(dcap_qvl::http::HttpResponse { status: 200, headers, body })
        }
    }

    #[tokio::test]
    async fn fetches_what_the_verified_chain_selects_and_caches_it_under_the_whole_key() {
        let dir = scratch("key");
        let pccs = FakePccs::serving("tdx_quote_collateral.json");
        let src = PccsCollateral::with_http(pccs.clone(), "https://pccs.example", &dir);
        let pck = genuine_pck();
        let key = pck.key().clone();
        // A file under the FMSPC alone (the old cache layout, which a junk quote could fill) is not used.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{}.json", key.fmspc_hex())), fixture("sgx_quote_collateral.json")).unwrap();
        assert!(matches!(src.collateral_for(&key), Err(CollateralError::Missing { .. })));

        src.prepare(&pck, TDX_NOW, 0).await.expect("fetched and checked");
        let asked = pccs.asked();
        let fmspc = hex::encode_upper(key.fmspc);
        assert!(asked.iter().any(|u| u.contains(&format!("/tdx/certification/v4/tcb?fmspc={fmspc}"))), "{asked:?}");
        assert!(asked.iter().any(|u| u.contains(&format!("pckcrl?ca={}", key.ca_id()))), "{asked:?}");
        assert!(dir.join(format!("{}.json", key.file_stem())).exists());
        assert!(src.collateral_for(&key).is_ok());
        // Fresh: no second fetch.
        src.prepare(&pck, TDX_NOW + 60, 0).await.unwrap();
        assert_eq!(pccs.asked().len(), asked.len());
        // The same platform under the other PCK CA or TEE is another entry.
        for other in [
            CollateralKey { ca: dcap_qvl::config::PckCa::Processor, ..key.clone() },
            CollateralKey { ca: dcap_qvl::config::PckCa::Platform, ..key.clone() },
            CollateralKey { tee: replicatoor_core::attest::pck::Tee::Sgx, ..key.clone() },
        ] {
            if other != key {
                assert_ne!(other.file_stem(), key.file_stem());
                assert!(matches!(src.collateral_for(&other), Err(CollateralError::Missing { .. })), "{other}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_pccs_answer_that_fails_its_checks_is_not_cached() {
        // Genuine collateral of another platform; and genuine collateral with a broken signature.
        let tampered = {
            let f = FakePccs::serving("tdx_quote_collateral.json");
            let mut c = f.collateral.clone();
            c.tcb_info_signature[3] ^= 1;
            FakePccs { collateral: c, asked: Default::default() }
        };
        for (name, pccs) in
            [("another platform", FakePccs::serving("sgx_quote_collateral.json")), ("bad signature", tampered)]
        {
            let dir = scratch("rejected");
            let src = PccsCollateral::with_http(pccs, "https://pccs.example", &dir);
            let pck = genuine_pck();
            let err = src.prepare(&pck, TDX_NOW, 0).await.unwrap_err();
            use replicatoor_core::attest::pck::{CollateralFault, Part};
            let fault = match err {
                CollateralError::Rejected { fault, .. } => fault,
                other => panic!("{name}: {other}"),
            };
            match name {
                "bad signature" => {
                    assert!(matches!(fault, CollateralFault::Signature { part: Part::TcbInfo, .. }), "{name}: {fault}")
                }
                _ => assert!(
                    matches!(fault, CollateralFault::WrongSubject { .. } | CollateralFault::PckRevocation(_)),
                    "{name}: {fault}"
                ),
            }
            assert!(matches!(src.collateral_for(pck.key()), Err(CollateralError::Missing { .. })), "{name}: cached");
            let again = src.prepare(&pck, TDX_NOW + 10, 0).await.unwrap_err().to_string();
            assert!(again.contains("next try after 60 s"), "{name}: {again}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// The attack: after Intel's TCB recovery 18, a PCCS (stale, or the operator's) keeps serving the
    /// TCB evaluation 17 under which a now-downgraded platform still passed. With the policy's floor
    /// at 18 the holder neither uses what it has cached nor what that PCCS serves: the request waits.
    #[tokio::test]
    async fn collateral_older_than_the_policy_floor_is_refetched_and_never_used() {
        let dir = scratch("floor");
        let pccs = FakePccs::serving("tdx_quote_collateral.json");
        let src = PccsCollateral::with_http(pccs.clone(), "https://pccs.example", &dir);
        let pck = genuine_pck();
        src.prepare(&pck, TDX_NOW, 17).await.expect("evaluation 17 meets a floor of 17");
        let fetches = pccs.asked().len();
        // Raised floor: the cached evaluation 17 is not fresh any more, so the PCCS is asked again,
        // and its answer (still 17) is refused.
        let err = src.prepare(&pck, TDX_NOW + 1, 18).await.unwrap_err().to_string();
        assert!(err.contains("TCB evaluation 17") && err.contains("minimum 18"), "{err}");
        assert!(pccs.asked().len() > fetches, "the cache was not trusted under the raised floor");
        // Within the back-off the PCCS is not asked again.
        let fetches = pccs.asked().len();
        let again = src.prepare(&pck, TDX_NOW + 10, 18).await.unwrap_err().to_string();
        assert!(again.contains("next try after 60 s"), "{again}");
        assert_eq!(pccs.asked().len(), fetches);
        // A floor of 17 (or none) is served from the cache without a fetch.
        src.prepare(&pck, TDX_NOW + 11, 17).await.expect("cached collateral meets the old floor");
        assert_eq!(pccs.asked().len(), fetches);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn unreachable_pccs_is_a_fetch_error_not_a_refusal() {
        let dir = scratch("unreachable");
        // A closed port on loopback: fails at once, no traffic leaves the machine.
        let src = PccsCollateral::new("http://127.0.0.1:9", &dir).unwrap();
        let pck = genuine_pck();
        let err = src.prepare(&pck, TDX_NOW, 0).await.unwrap_err();
        assert!(matches!(err, CollateralError::Fetch { .. }), "{err}");
        // Within the back-off the PCCS is not asked again.
        let again = src.prepare(&pck, TDX_NOW + 10, 0).await.unwrap_err().to_string();
        assert!(again.contains("next try after 60 s"), "{again}");
        // After it, it is (and fails again, for another minute).
        let later = src.prepare(&pck, TDX_NOW + 61, 0).await.unwrap_err().to_string();
        assert!(!later.contains("next try after"), "{later}");
        let again = src.prepare(&pck, TDX_NOW + 62, 0).await.unwrap_err().to_string();
        assert!(again.contains("failed at 1751328061; next try after 60 s"), "{again}");
        assert!(matches!(src.collateral_for(pck.key()), Err(CollateralError::Missing { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
