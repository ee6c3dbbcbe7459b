//! Collateral sources that do I/O: a directory of files (air-gapped auditors, offline operation)
//! and a PCCS with a disk cache. The trait they implement is the trust kernel's.

use dcap_qvl::{quote::Quote, QuoteCollateralV3};
use replicatoor_chain::Backoff;
pub use replicatoor_core::attest::collateral::{
    fmspc_of, CollateralError, CollateralSource, FixedCollateral, NoCollateral, Prepare,
};
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

/// Read one collateral file (dcap-qvl's `QuoteCollateralV3` JSON).
pub fn fixed_from_file(path: &Path) -> Result<FixedCollateral, CollateralError> {
    read_json(path).map(FixedCollateral)
}

/// A directory of `<fmspc-hex>.json` files in dcap-qvl's `QuoteCollateralV3` JSON format
/// (air-gapped auditors, offline operation).
pub struct DirCollateral {
    dir: PathBuf,
}

impl DirCollateral {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirCollateral { dir: dir.into() }
    }
}

impl CollateralSource for DirCollateral {
    fn collateral_for(&self, quote: &Quote) -> Result<QuoteCollateralV3, CollateralError> {
        let fmspc = fmspc_of(quote)?;
        let path = self.dir.join(format!("{fmspc}.json"));
        if !path.exists() {
            return Err(CollateralError::Missing { fmspc, dir: self.dir.clone() });
        }
        read_json(&path)
    }
}

/// Collateral fetched from a PCCS (Intel PCS, or Phala's PCCS by default) and cached on disk per
/// FMSPC until its `nextUpdate` (or a day, whichever is first). Stale or missing collateral that
/// cannot be fetched makes the request wait; it is never accepted stale.
pub struct PccsCollateral {
    url: String,
    cache: DirCollateral,
    dir: PathBuf,
    /// FMSPC → when its last fetch failed and how long to wait: a junk quote with a made-up FMSPC
    /// must not make us call the PCCS on every retry.
    failed: std::sync::Mutex<std::collections::HashMap<String, FailedFetch>>,
}

/// Wait before a failed fetch for the same FMSPC is tried again. Constant (base = cap): a made-up
/// FMSPC costs one PCCS call a minute whatever the delay, and a real one must recover within a minute
/// of the PCCS coming back.
const FETCH_BACKOFF: Duration = Duration::from_secs(60);

struct FailedFetch {
    at: u64,
    retry_after: u64,
    backoff: Backoff,
}

/// Refetch cached collateral at least this often, even before its nextUpdate (CRLs change too).
const MAX_CACHE_AGE: u64 = 24 * 3600;

#[derive(serde::Serialize, serde::Deserialize)]
struct CacheMeta {
    fetched_at: u64,
    next_update: u64,
}

impl PccsCollateral {
    pub fn new(url: impl Into<String>, cache_dir: impl Into<PathBuf>) -> Self {
        let dir = cache_dir.into();
        PccsCollateral { url: url.into(), cache: DirCollateral::new(&dir), dir, failed: Default::default() }
    }

    fn meta_path(&self, fmspc: &str) -> PathBuf {
        self.dir.join(format!("{fmspc}.meta.json"))
    }

    fn fresh(&self, fmspc: &str, now: u64) -> bool {
        let Ok(text) = std::fs::read_to_string(self.meta_path(fmspc)) else { return false };
        let Ok(m) = serde_json::from_str::<CacheMeta>(&text) else { return false };
        now < m.next_update && now < m.fetched_at.saturating_add(MAX_CACHE_AGE)
    }

    async fn fetch(&self, raw_quote: &[u8], fmspc: &str, now: u64) -> Result<(), CollateralError> {
        let err = |reason: String| CollateralError::Fetch { url: self.url.clone(), reason };
        let client = dcap_qvl::collateral::CollateralClient::with_default_http(self.url.clone())
            .map_err(|e| err(format!("{e:#}")))?;
        let mut c = tokio::time::timeout(Duration::from_secs(30), client.fetch(raw_quote))
            .await
            .map_err(|_| err("no answer within 30 s".into()))?
            .map_err(|e| err(format!("{e:#}")))?;
        // The PCK chain belongs to one quote, not to the platform: verify each quote with its own.
        c.pck_certificate_chain = None;
        let next_update = next_update_of(&c).ok_or_else(|| err("collateral has no parseable nextUpdate".into()))?;
        let json = serde_json::to_vec(&c).map_err(|e| err(e.to_string()))?;
        let meta = serde_json::to_vec(&CacheMeta { fetched_at: now, next_update }).map_err(|e| err(e.to_string()))?;
        let io = |e: std::io::Error| CollateralError::Unreadable { path: self.dir.clone(), reason: e.to_string() };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        crate::install::install_atomically(&self.dir.join(format!("{fmspc}.json")), &json).map_err(io)?;
        crate::install::install_atomically(&self.meta_path(fmspc), &meta).map_err(io)?;
        tracing::info!(target: "replicatoor::collateral", fmspc, next_update, url = %self.url, "collateral fetched and cached");
        Ok(())
    }
}

impl CollateralSource for PccsCollateral {
    fn collateral_for(&self, quote: &Quote) -> Result<QuoteCollateralV3, CollateralError> {
        self.cache.collateral_for(quote)
    }

    fn prepare<'a>(&'a self, raw_quote: &'a [u8], now: u64) -> Prepare<'a> {
        Box::pin(async move {
            // An unparseable quote is the verifier's to refuse, not ours to fetch for.
            let Ok(quote) = Quote::parse(raw_quote) else { return Ok(()) };
            let Ok(fmspc) = fmspc_of(&quote) else { return Ok(()) };
            if self.fresh(&fmspc, now) {
                return Ok(());
            }
            let waiting = self.failed.lock().ok().and_then(|m| m.get(&fmspc).map(|f| (f.at, f.retry_after)));
            if let Some((at, wait)) = waiting.filter(|(at, wait)| now < at.saturating_add(*wait)) {
                return Err(CollateralError::Fetch {
                    url: self.url.clone(),
                    reason: format!("fetch for FMSPC {fmspc} failed at {at}; next try after {wait} s"),
                });
            }
            let result = self.fetch(raw_quote, &fmspc, now).await;
            if let Ok(mut m) = self.failed.lock() {
                if result.is_err() {
                    let f = m.entry(fmspc).or_insert_with(|| FailedFetch {
                        at: now,
                        retry_after: 0,
                        backoff: Backoff::new(FETCH_BACKOFF, FETCH_BACKOFF),
                    });
                    f.at = now;
                    f.retry_after = f.backoff.next_delay().as_secs();
                } else {
                    m.remove(&fmspc);
                }
            }
            result
        })
    }
}

/// The earliest `nextUpdate` of the TCB info and QE identity, as unix seconds.
fn next_update_of(c: &QuoteCollateralV3) -> Option<u64> {
    let field = |json: &str| -> Option<u64> {
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        parse_rfc3339_utc(v.get("nextUpdate")?.as_str()?)
    };
    Some(field(&c.tcb_info)?.min(field(&c.qe_identity)?))
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` → unix seconds (the form Intel's collateral uses).
fn parse_rfc3339_utc(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + se).ok()
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
    fn next_update_of_genuine_collateral() {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/dcap-qvl-samples/tdx_quote_collateral.json"
        ));
        let c: QuoteCollateralV3 = serde_json::from_str(text).unwrap();
        let nu = next_update_of(&c).unwrap();
        // min(tcbInfo 2025-07-19T10:16:03Z, qeIdentity 2025-07-19T10:32:27Z).
        assert_eq!(nu, 1_752_920_163);
    }

    #[tokio::test]
    async fn unreachable_pccs_is_a_fetch_error_not_a_refusal() {
        let dir = std::env::temp_dir().join(format!("replicatoor-pccs-{}", std::process::id()));
        // A closed port on loopback: fails at once, no traffic leaves the machine.
        let src = PccsCollateral::new("http://127.0.0.1:9", &dir);
        let raw =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/dcap-qvl-samples/tdx_quote"))
                .unwrap();
        let err = src.prepare(&raw, 1_751_328_000).await.unwrap_err();
        assert!(matches!(err, CollateralError::Fetch { .. }), "{err}");
        // Within the back-off the PCCS is not asked again.
        let again = src.prepare(&raw, 1_751_328_010).await.unwrap_err().to_string();
        assert!(again.contains("next try after 60 s"), "{again}");
        // After it, it is (and fails again, for another minute).
        let later = src.prepare(&raw, 1_751_328_061).await.unwrap_err().to_string();
        assert!(!later.contains("next try after"), "{later}");
        let again = src.prepare(&raw, 1_751_328_062).await.unwrap_err().to_string();
        assert!(again.contains("failed at 1751328061; next try after 60 s"), "{again}");
        let q = Quote::parse(&raw).unwrap();
        assert!(matches!(src.collateral_for(&q), Err(CollateralError::Missing { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
