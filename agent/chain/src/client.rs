//! A chain client bound to one UpgradeOperator deployment: reads at a chosen block, and sends
//! transactions with gas estimation, bounded retries and receipt checks.

use super::bindings::UpgradeOperator::{self, UpgradeOperatorErrors, UpgradeOperatorInstance};
use crate::backoff::Backoff;
use alloy::{
    contract::CallBuilder,
    eips::BlockId,
    network::{Ethereum, EthereumWallet},
    primitives::{Address, TxHash, B256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionReceipt,
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use anyhow::Context as _;
use replicatoor_core::protocol::{Deployment, Policy, RequestStatus};
use std::{future::Future, sync::Arc, time::Duration};
use tracing::{debug, warn};

/// Deadline of one JSON-RPC request.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// First and largest delay between tries of one transaction ([`TxConfig::max_attempts`] tries).
const SEND_RETRY_BASE: Duration = Duration::from_millis(250);
const SEND_RETRY_CAP: Duration = Duration::from_secs(8);

/// A block as decisions refer to it: its number, its hash (what witnesses must agree on, and what
/// detects a reorg) and its timestamp (the verification time of PROTOCOL.md §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRef {
    /// Block height.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// Block timestamp (unix seconds).
    pub timestamp: u64,
}

/// Chain failures, split by what the caller should do about them.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC failed or timed out; retry later.
    #[error("RPC error: {0}")]
    Rpc(String),
    /// The contract refused the call (decoded custom error); retrying will not help.
    #[error("contract reverted: {0:?}")]
    Reverted(Box<UpgradeOperatorErrors>),
    /// The call reverted without data we understand.
    #[error("reverted without a known error: {0}")]
    RevertedUnknown(String),
    /// The transaction was mined but failed (e.g. another holder won a race in between).
    #[error("transaction {0} was mined but reverted")]
    FailedOnChain(TxHash),
    /// Bad configuration (URL, key, address).
    #[error("configuration: {0}")]
    Config(String),
}

impl ChainError {
    /// True for faults worth retrying.
    pub fn is_transient(&self) -> bool {
        matches!(self, ChainError::Rpc(_))
    }
}

fn rpc<E: std::fmt::Display>(e: E) -> ChainError {
    ChainError::Rpc(e.to_string())
}

/// The result of a sent transaction.
#[derive(Debug, Clone)]
pub struct TxOutcome {
    pub tx_hash: TxHash,
    pub block: u64,
    pub gas_used: u64,
    pub receipt: TransactionReceipt,
}

impl TxOutcome {
    /// The first event `E` this transaction emitted.
    pub fn event<E: alloy::sol_types::SolEvent>(&self) -> Option<E> {
        self.receipt.inner.logs().iter().find_map(|l| l.log_decode::<E>().ok()).map(|l| l.inner.data)
    }
}

/// Sending knobs.
#[derive(Debug, Clone)]
pub struct TxConfig {
    /// Gas limit = estimate × (100 + margin) / 100.
    pub gas_margin_percent: u64,
    pub max_attempts: u32,
    pub receipt_timeout: Duration,
}

impl Default for TxConfig {
    fn default() -> Self {
        TxConfig { gas_margin_percent: 20, max_attempts: 5, receipt_timeout: Duration::from_secs(120) }
    }
}

/// A client for one deployment.
#[derive(Clone)]
pub struct Chain {
    provider: DynProvider,
    contract: UpgradeOperatorInstance<DynProvider>,
    deployment: Deployment,
    sender: Option<Address>,
    tx: TxConfig,
    /// The sender's next nonce, assigned here so that several transactions can be in flight at once
    /// (a holder's answers); `None` until read, and again after each [`Chain::send`], before each batch
    /// ([`Chain::forget_nonce`]) and after a failure (read anew: the node's pending count then fills
    /// any gap a failed or dropped transaction left).
    nonce: Arc<tokio::sync::Mutex<Option<u64>>>,
}

impl Chain {
    /// Connect over HTTP(S). `sender` pays for transactions; without it the client is read-only.
    pub async fn connect(url: &str, contract: Address, sender: Option<PrivateKeySigner>) -> Result<Self, ChainError> {
        Self::connect_with_timeout(url, contract, sender, RPC_TIMEOUT).await
    }

    /// Read-only clients for each of a pinned RPC quorum's `urls`, in order (transport: the quorum's
    /// headers are checked by `verified::QuorumSource`).
    pub async fn connect_all(urls: &[String], contract: Address) -> anyhow::Result<Vec<Self>> {
        let mut clients = Vec::with_capacity(urls.len());
        for url in urls {
            clients.push(Self::connect(url, contract, None).await.with_context(|| format!("pinned RPC {url}"))?);
        }
        Ok(clients)
    }

    /// [`Chain::connect`] with another per-request deadline.
    pub async fn connect_with_timeout(
        url: &str,
        contract: Address,
        sender: Option<PrivateKeySigner>,
        timeout: Duration,
    ) -> Result<Self, ChainError> {
        let url: reqwest_url::Url = url.parse().map_err(|e| ChainError::Config(format!("RPC URL {url:?}: {e}")))?;
        let sender_addr = sender.as_ref().map(|s| s.address());
        let base = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id();
        // A stalled RPC must not stall the agent: every request has a deadline (reqwest has none by default).
        let http = alloy::transports::http::reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ChainError::Config(format!("HTTP client: {e}")))?;
        let client = alloy::rpc::client::RpcClient::new_http_with_client(http, url);
        let provider = match sender {
            Some(s) => base.wallet(EthereumWallet::from(s)).connect_client(client).erased(),
            None => base.connect_client(client).erased(),
        };
        let chain_id = provider.get_chain_id().await.map_err(rpc)?;
        let code = provider.get_code_at(contract).await.map_err(rpc)?;
        if code.is_empty() {
            return Err(ChainError::Config(format!("no contract at {contract} on chain {chain_id}")));
        }
        Ok(Chain {
            contract: UpgradeOperator::new(contract, provider.clone()),
            provider,
            deployment: Deployment { chain_id, contract },
            sender: sender_addr,
            tx: TxConfig::default(),
            nonce: Arc::default(),
        })
    }

    pub fn with_tx_config(mut self, tx: TxConfig) -> Self {
        self.tx = tx;
        self
    }

    pub fn deployment(&self) -> Deployment {
        self.deployment
    }
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }
    pub fn contract(&self) -> &UpgradeOperatorInstance<DynProvider> {
        &self.contract
    }
    pub fn sender(&self) -> Option<Address> {
        self.sender
    }

    pub async fn head(&self) -> Result<u64, ChainError> {
        self.provider.get_block_number().await.map_err(rpc)
    }

    /// Number, hash and timestamp of a block.
    pub async fn block(&self, number: u64) -> Result<BlockRef, ChainError> {
        let b = self
            .provider
            .get_block_by_number(number.into())
            .await
            .map_err(rpc)?
            .ok_or_else(|| ChainError::Rpc(format!("block {number} not found")))?;
        Ok(BlockRef { number: b.header.number, hash: b.header.hash, timestamp: b.header.timestamp })
    }

    pub async fn policy_at(&self, at: BlockId) -> Result<Policy, ChainError> {
        self.contract.policy().block(at).call().await.map(Into::into).map_err(read_err)
    }

    pub async fn is_allowed_at(
        &self,
        id: B256,
        kind: replicatoor_core::protocol::RefKind,
        at: BlockId,
    ) -> Result<bool, ChainError> {
        self.contract.isAllowed(id, kind as u8).block(at).call().await.map_err(read_err)
    }

    pub async fn cluster_at(&self, at: BlockId) -> Result<(Address, u64), ChainError> {
        // Two calls must read one state: pin `latest` to a block number, or a block mined in between
        // can pair the old cluster with the new epoch.
        let at = if at == BlockId::latest() { BlockId::number(self.head().await?) } else { at };
        let c = self.contract.cluster().block(at).call().await.map_err(read_err)?;
        let e = self.contract.epoch().block(at).call().await.map_err(read_err)?;
        Ok((c, e))
    }

    /// Status at a block (use `pending` to see the mempool) of the request named `request`
    /// (`protocol::request_key(pk, requester)`, what its answers sign). A number the contract cannot
    /// return is the RPC's fault.
    pub async fn request_status(&self, request: B256, at: BlockId) -> Result<RequestStatus, ChainError> {
        let raw = self.contract.requestStatus(request).block(at).call().await.map_err(read_err)?;
        RequestStatus::try_from(raw).map_err(rpc)
    }

    /// Estimate, send with a gas margin, wait for the receipt; retry transient faults with back-off.
    /// A revert (at estimation or on chain) is returned at once: it is an answer, not a fault.
    pub async fn send<C: SolCall + Clone>(
        &self,
        call: CallBuilder<&DynProvider, std::marker::PhantomData<C>>,
    ) -> Result<TxOutcome, ChainError> {
        self.retry_transient(C::SIGNATURE, || self.send_once(&call)).await
    }

    async fn send_once<C: SolCall>(
        &self,
        call: &CallBuilder<&DynProvider, std::marker::PhantomData<C>>,
    ) -> Result<TxOutcome, ChainError> {
        let pending = self.submit_once(call).await?;
        let outcome = self.confirm(pending, self.tx.receipt_timeout).await;
        // One transaction at a time: the next one reads the node's count again, as after a reorg it must.
        self.forget_nonce().await;
        outcome
    }

    /// Estimate and send without waiting for the receipt (transient faults retried), so a holder can
    /// put many answers in one block; [`Chain::confirm`] waits for each.
    pub async fn submit<C: SolCall>(
        &self,
        call: CallBuilder<&DynProvider, std::marker::PhantomData<C>>,
    ) -> Result<Submitted, ChainError> {
        self.retry_transient(C::SIGNATURE, || self.submit_once(&call)).await
    }

    /// Up to `max_attempts` tries of one transaction step. Short delays: the roles retry for longer
    /// around this, and a nonce or fee problem is better met again soon than late.
    async fn retry_transient<T, F, Fut>(&self, call: &'static str, mut f: F) -> Result<T, ChainError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ChainError>>,
    {
        let mut backoff = Backoff::new(SEND_RETRY_BASE, SEND_RETRY_CAP);
        loop {
            match f().await {
                Err(e) if e.is_transient() && backoff.failures() + 1 < self.tx.max_attempts => {
                    let attempt = backoff.failures() + 1;
                    warn!(target: "replicatoor::chain", call, attempt, error = %e, "transaction failed, retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                other => return other,
            }
        }
    }

    async fn submit_once<C: SolCall>(
        &self,
        call: &CallBuilder<&DynProvider, std::marker::PhantomData<C>>,
    ) -> Result<Submitted, ChainError> {
        let started = std::time::Instant::now();
        let estimate = call.estimate_gas().await.map_err(send_err)?;
        let estimate_ms = started.elapsed().as_millis() as u64;
        let limit = estimate.saturating_mul(100 + self.tx.gas_margin_percent) / 100;
        let nonce = self.next_nonce().await?;
        let pending = match call.clone().gas(limit).nonce(nonce).send().await {
            Ok(p) => p,
            Err(e) => {
                self.forget_nonce().await;
                return Err(send_err(e));
            }
        };
        let send_ms = started.elapsed().as_millis() as u64 - estimate_ms;
        debug!(target: "replicatoor::chain", call = C::SIGNATURE, tx_hash = %pending.tx_hash(), gas_limit = limit, estimate_ms, send_ms, "sent");
        Ok(Submitted(pending))
    }

    /// The node's EIP-1559 fee estimate: a batch of transactions can share it instead of each asking.
    pub async fn fees(&self) -> Result<alloy::eips::eip1559::Eip1559Estimation, ChainError> {
        self.provider.estimate_eip1559_fees().await.map_err(rpc)
    }

    /// Read the sender's nonce from the node again at the next send: before a batch of concurrent
    /// submissions (a reorg may have dropped earlier ones), and after any failure.
    pub async fn forget_nonce(&self) {
        *self.nonce.lock().await = None;
    }

    /// The nonce for the next transaction: one more than the last one assigned, or the node's pending
    /// count when there is none (first send, or after a failed one).
    async fn next_nonce(&self) -> Result<u64, ChainError> {
        let mut next = self.nonce.lock().await;
        let nonce = match *next {
            Some(n) => n,
            None => {
                let sender = self.sender.ok_or_else(|| ChainError::Config("a read-only client cannot send".into()))?;
                self.provider.get_transaction_count(sender).pending().await.map_err(rpc)?
            }
        };
        *next = Some(nonce + 1);
        Ok(nonce)
    }

    /// Wait up to `timeout` for a submitted transaction's receipt; a mined revert is `FailedOnChain`.
    pub async fn confirm(&self, sent: Submitted, timeout: Duration) -> Result<TxOutcome, ChainError> {
        let tx_hash = *sent.0.tx_hash();
        let receipt = match sent.0.with_timeout(Some(timeout)).get_receipt().await {
            Ok(r) => r,
            Err(e) => {
                // Not mined in time: it may be gone (a reorg) with the nonces after it.
                self.forget_nonce().await;
                return Err(rpc(e));
            }
        };
        if !receipt.status() {
            return Err(ChainError::FailedOnChain(tx_hash));
        }
        Ok(TxOutcome { tx_hash, block: receipt.block_number.unwrap_or_default(), gas_used: receipt.gas_used, receipt })
    }
}

/// A transaction sent and not yet confirmed.
pub struct Submitted(alloy::providers::PendingTransactionBuilder<Ethereum>);

impl Submitted {
    pub fn tx_hash(&self) -> TxHash {
        *self.0.tx_hash()
    }
}

fn read_err(e: alloy::contract::Error) -> ChainError {
    send_err(e)
}

/// Split contract errors into reverts (answers) and transport faults (retry).
fn send_err(e: alloy::contract::Error) -> ChainError {
    if let Some(decoded) = e.as_decoded_interface_error::<UpgradeOperatorErrors>() {
        return ChainError::Reverted(Box::new(decoded));
    }
    if e.as_revert_data().is_some() {
        return ChainError::RevertedUnknown(e.to_string());
    }
    ChainError::Rpc(e.to_string())
}

// The reqwest URL type re-exported by alloy's HTTP transport.
mod reqwest_url {
    pub use alloy::transports::http::reqwest::Url;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_silent_rpc_times_out_instead_of_hanging() {
        // Accepts connections and never answers: the agent must get an error, not wait forever.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        // The outer timeout only guards the test against hanging; the agent's own deadline must fire first.
        let r = tokio::time::timeout(
            Duration::from_secs(60),
            Chain::connect_with_timeout(&url, Address::ZERO, None, Duration::from_millis(300)),
        )
        .await
        .expect("the RPC deadline fired");
        assert!(matches!(r, Err(ChainError::Rpc(_))), "expected an RPC timeout");
        keep.abort();
    }
}
