//! The one way to read logs over a block range: `eth_getLogs` in spans the provider accepts.
//!
//! Hosted providers refuse ranges over a limit they do not advertise (often 1,000–10,000 blocks, some
//! as few as 5). The scan starts at [`ScanConfig::initial_span`], doubles the span after each success
//! up to [`ScanConfig::max_span`] until the provider first refuses a range, then halves on each refusal
//! and keeps the span that works: the limit is learned once per scan. A failure at a single block is a
//! real fault and is returned.

use super::client::{Chain, ChainError};
use alloy::{
    providers::Provider,
    rpc::types::{Filter, Log},
};
use std::future::Future;
use tracing::debug;

/// Span settings of one scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanConfig {
    /// Blocks asked for in the first request. The follower's steps (2,000 blocks) fit in one.
    pub initial_span: u64,
    /// Largest span the scan grows to while the provider accepts everything.
    pub max_span: u64,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig { initial_span: 10_000, max_span: 100_000 }
    }
}

/// How far a scan got, after each successful request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanProgress {
    pub from: u64,
    pub to: u64,
    /// Every block in `from..=scanned_to` has been read.
    pub scanned_to: u64,
    /// Logs found so far.
    pub logs: usize,
}

impl ScanProgress {
    /// Share of the range read, 0.0 to 1.0.
    pub fn fraction(&self) -> f64 {
        ((self.scanned_to - self.from) as f64 + 1.0) / ((self.to - self.from) as f64 + 1.0)
    }
}

/// Every log matching `filter` in `from..=to` (empty when `from > to`), with the default spans.
pub async fn get_logs(chain: &Chain, filter: &Filter, from: u64, to: u64) -> Result<Vec<Log>, ChainError> {
    scan(chain, filter, from, to, ScanConfig::default(), |_| {}).await
}

/// [`get_logs`] with chosen spans and a callback after each successful request.
pub async fn scan(
    chain: &Chain,
    filter: &Filter,
    from: u64,
    to: u64,
    cfg: ScanConfig,
    progress: impl FnMut(ScanProgress),
) -> Result<Vec<Log>, ChainError> {
    let fetch = |start: u64, end: u64| {
        let f = filter.clone().from_block(start).to_block(end);
        async move { chain.provider().get_logs(&f).await }
    };
    adaptive(from, to, cfg, fetch, progress).await.map_err(|e| ChainError::Rpc(e.to_string()))
}

/// The span state machine, apart from the provider so that it can be tested alone.
#[derive(Debug)]
struct Span {
    span: u64,
    max: u64,
    /// Set at the first refusal: from then on the span only shrinks.
    limited: bool,
}

impl Span {
    fn new(cfg: ScanConfig) -> Self {
        let max = cfg.max_span.max(1);
        Span { span: cfg.initial_span.clamp(1, max), max, limited: false }
    }

    fn accepted(&mut self) {
        if !self.limited {
            self.span = self.span.saturating_mul(2).min(self.max);
        }
    }

    /// False when a single block was refused: shrinking cannot help.
    fn refused(&mut self) -> bool {
        if self.span == 1 {
            return false;
        }
        self.limited = true;
        self.span = self.span.div_ceil(2);
        true
    }
}

async fn adaptive<T, E, F, Fut>(
    from: u64,
    to: u64,
    cfg: ScanConfig,
    mut fetch: F,
    mut progress: impl FnMut(ScanProgress),
) -> Result<Vec<T>, E>
where
    E: std::fmt::Display,
    F: FnMut(u64, u64) -> Fut,
    Fut: Future<Output = Result<Vec<T>, E>>,
{
    let mut out = Vec::new();
    let mut span = Span::new(cfg);
    let mut start = from;
    while start <= to {
        let end = to.min(start.saturating_add(span.span - 1));
        match fetch(start, end).await {
            Ok(mut logs) => {
                out.append(&mut logs);
                progress(ScanProgress { from, to, scanned_to: end, logs: out.len() });
                span.accepted();
                match end.checked_add(1) {
                    Some(next) => start = next,
                    None => break,
                }
            }
            Err(e) => {
                if !span.refused() {
                    return Err(e);
                }
                debug!(target: "replicatoor::scan", start, span = span.span, error = %e, "getLogs failed, halving range");
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A provider that refuses ranges over `limit` blocks and answers one "log" (its block) per block.
    struct Limited {
        limit: u64,
        calls: RefCell<Vec<(u64, u64)>>,
    }

    impl Limited {
        fn new(limit: u64) -> Self {
            Limited { limit, calls: RefCell::new(Vec::new()) }
        }

        async fn run(&self, from: u64, to: u64, cfg: ScanConfig) -> Result<Vec<u64>, String> {
            let fetch = |s: u64, e: u64| {
                self.calls.borrow_mut().push((s, e));
                let r = if e - s + 1 > self.limit {
                    Err(format!("range {} over {}", e - s + 1, self.limit))
                } else {
                    Ok((s..=e).collect())
                };
                async move { r }
            };
            adaptive(from, to, cfg, fetch, |_| {}).await
        }

        fn refusals(&self) -> usize {
            self.calls.borrow().iter().filter(|(s, e)| e - s + 1 > self.limit).count()
        }
    }

    fn cfg(initial_span: u64, max_span: u64) -> ScanConfig {
        ScanConfig { initial_span, max_span }
    }

    #[tokio::test]
    async fn a_range_within_the_first_span_is_one_request() {
        let p = Limited::new(u64::MAX);
        assert_eq!(p.run(5, 2_004, ScanConfig::default()).await.unwrap(), (5..=2_004).collect::<Vec<_>>());
        assert_eq!(*p.calls.borrow(), [(5, 2_004)]);
    }

    #[tokio::test]
    async fn the_limit_is_learned_once_and_every_block_is_read() {
        let p = Limited::new(200);
        let logs = p.run(0, 5_000, cfg(10_000, 100_000)).await.unwrap();
        assert_eq!(logs, (0..=5_000).collect::<Vec<_>>());
        // 10,000 → 5,000 → … → 313 refused (six), then 157-block spans that never grow again.
        assert_eq!(p.refusals(), 6);
        assert!(p.calls.borrow().iter().skip(6).all(|(s, e)| e - s < 157), "{:?}", p.calls.borrow());
    }

    #[tokio::test]
    async fn spans_grow_until_the_cap_while_accepted() {
        let p = Limited::new(u64::MAX);
        p.run(1, 100, cfg(4, 16)).await.unwrap();
        let spans: Vec<u64> = p.calls.borrow().iter().map(|(s, e)| e - s + 1).collect();
        assert_eq!(spans[..4], [4, 8, 16, 16]);
        assert!(spans.iter().all(|s| *s <= 16));
    }

    #[tokio::test]
    async fn a_refused_single_block_is_an_error() {
        let p = Limited::new(0);
        let err = p.run(7, 9, cfg(4, 16)).await.unwrap_err();
        assert!(err.contains("range 1 over 0"), "{err}");
        assert_eq!(p.calls.borrow().last(), Some(&(7, 7)));
    }

    #[tokio::test]
    async fn an_empty_range_asks_nothing() {
        let p = Limited::new(10);
        assert!(p.run(10, 9, ScanConfig::default()).await.unwrap().is_empty());
        assert!(p.calls.borrow().is_empty());
    }

    #[tokio::test]
    async fn the_last_block_ends_the_scan() {
        let p = Limited::new(u64::MAX);
        assert_eq!(p.run(u64::MAX - 2, u64::MAX, cfg(2, 2)).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn progress_reports_each_accepted_request() {
        let mut seen = Vec::new();
        let fetch = |s: u64, e: u64| async move { Ok::<_, String>(vec![(); (e - s + 1) as usize]) };
        adaptive(10, 19, cfg(5, 5), fetch, |p| seen.push(p)).await.unwrap();
        assert_eq!(seen.iter().map(|p| (p.scanned_to, p.logs)).collect::<Vec<_>>(), [(14, 5), (19, 10)]);
        assert_eq!(seen.last().map(ScanProgress::fraction), Some(1.0));
    }
}
