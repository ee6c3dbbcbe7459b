//! The release gate: what a holder's decision reads from the chain ([`ChainState`]) and the one
//! function that decides ([`decide`]), for a new request and again for a sealed delivery right
//! before it leaves. Everything that releases the secret passes here; the caller only adds what is
//! local (witness RPCs, the refusal budget) and does what the [`Verdict`] says: seal, sign, send,
//! wait. The gate reads the chain only through the port, so the same code runs on proven state (a
//! pinned deployment) and on an RPC's answers (`--dangerously-trust-rpc`); which one is the
//! caller's choice, never the gate's.

use crate::{
    attest::{
        pipeline::{self, Context, Decision, References},
        AcceptedRequest, RequestBinding, Verifier,
    },
    clock::Clock,
    delivery::SignedDelivery,
    protocol::{Deployment, Policy, RefKind, RequestStatus},
    refusal::Refusal,
};
use alloy::primitives::{Address, B256};
use std::{
    future::Future,
    time::{Duration, Instant},
};

/// A request as posted (`SecretRequested`): what it binds, where it is, and its attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request id, requester and HPKE key (the quote must bind the last two).
    pub binding: RequestBinding,
    /// The block the request event is in.
    pub block: u64,
    /// The cluster epoch the requester named (not a check: carried so that a request compares whole).
    pub epoch: u64,
    /// The posted quote (raw or compact, PROTOCOL.md §3.9).
    pub quote: Vec<u8>,
    /// The posted event log (compact, PROTOCOL.md §3.5).
    pub event_log: Vec<u8>,
}

/// The contract state one decision reads, at one decision point (a block). Implementations read it
/// proven against a trusted header or from an RPC; a read that fails is an error, never an answer,
/// and the gate turns it into [`Verdict::Wait`].
pub trait ChainState: References {
    /// The decision point's block time (the contract's `block.timestamp`): quotes are verified at
    /// it, so the platform must be trustworthy when the secret goes.
    fn now(&self) -> u64;
    /// The policy in force.
    fn policy(&self) -> impl Future<Output = Result<Policy, Self::Error>> + Send;
    /// The cluster address the contract accepts deliveries from.
    fn cluster(&self) -> impl Future<Output = Result<Address, Self::Error>> + Send;
    /// The status of the request named `request` ([`crate::protocol::request_key`]).
    fn status(&self, request: B256) -> impl Future<Output = Result<RequestStatus, Self::Error>> + Send;
    /// The request as the chain recorded it, looked up by `claimed`'s id and block: `None` when the
    /// chain holds no such request there (whoever showed `claimed` made it up).
    fn request(&self, claimed: &Request) -> impl Future<Output = Result<Option<Request>, Self::Error>> + Send;
    /// The latest commitment `holder` posted (`commitments(holder)`, PROTOCOL.md §5.3; zero: none).
    fn commitment(&self, holder: Address) -> impl Future<Output = Result<B256, Self::Error>> + Send;
}

/// Who decides: this holder's deployment, quote verifier, and the cluster whose key it holds.
pub struct Gate<'a> {
    /// The chain and contract every binding includes.
    pub deployment: Deployment,
    /// The quote verifier (trust roots and collateral).
    pub verifier: &'a Verifier,
    /// The cluster address of the bundle this holder holds.
    pub cluster: Address,
    /// The TD's clocks: the sealed question measures its commitment's wait on the monotonic one.
    pub clock: &'a dyn Clock,
}

/// A holder's commitment to a batch of answers (PROTOCOL.md §5.3): a value its TD drew at random
/// after deciding, posted from `holder` before any sealed delivery of the batch leaves. A state that
/// proves it was read at a header at or after the block that included it, so after the decision: an
/// operator who froze the TD's view cannot show one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commitment {
    /// The account that posts it (the holder's sender).
    pub holder: Address,
    /// `keccak256("replicatoor/commit/v1" ‖ nonce ‖ be256(requestId)…)` ([`crate::protocol::commitment`]).
    pub value: B256,
    /// When the nonce was drawn, by the TD's monotonic clock.
    pub drawn: Instant,
    /// How long after `drawn` a header proving it may still release (the measured `reveal_within_secs`):
    /// a header withheld longer may predate a narrowing by more than the bound.
    pub within: Duration,
}

/// What is asked of the gate.
#[derive(Debug, Clone, Copy)]
pub enum Question<'a> {
    /// A request seen on chain: may the bundle be sealed to it?
    Request(&'a Request),
    /// A delivery sealed earlier, about to be sent: is the state it is read at later than the
    /// holder's commitment (which shows it, within the commitment's wait bound), and does the state it
    /// was decided on still hold there (the policy it names, both references, the request still
    /// pending)? Its quote was verified under exactly that state, so only the state is read again.
    Sealed(&'a SignedDelivery, &'a Commitment),
}

/// Which read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The request's status.
    Status,
    /// The contract's cluster.
    Cluster,
    /// The request event itself.
    Request,
    /// The policy.
    Policy,
    /// A reference's status.
    Reference,
    /// The holder's commitment.
    Commitment,
}

/// Why the gate cannot answer yet. Never a refusal: the question is asked again later.
#[derive(Debug)]
pub enum Wait<E> {
    /// A read of the chain state failed (unreachable RPC, or an answer that does not prove itself).
    Unreadable(Read, E),
    /// The request shown is not the one the chain recorded under its id and block.
    NotOnChain,
    /// A local or transient fault in verification (collateral, a reference read).
    Retry(String),
    /// Since the decision, this changed ([`Question::Sealed`] only): decide again.
    Changed(&'static str),
    /// The state does not show the holder's commitment yet ([`Question::Sealed`] only): it may be
    /// from before the commitment was included, so from before the decision. Wait for a newer header.
    NotCommitted,
    /// The commitment was drawn longer ago than its bound by the TD's monotonic clock
    /// ([`Question::Sealed`] only): whatever header shows it now may have been withheld, so this
    /// batch is given up. Decide again, with a new commitment.
    Late {
        /// Since the nonce was drawn.
        waited: Duration,
        /// The bound.
        within: Duration,
    },
}

/// The gate's answer.
#[derive(Debug)]
pub enum Verdict<E> {
    /// Every check passed: the bundle may be sealed to this request (`request`: as the chain
    /// recorded it, which is what was verified).
    Deliver {
        /// The acceptance a seal takes.
        accepted: Box<AcceptedRequest>,
        /// The request it accepted.
        request: Box<Request>,
    },
    /// The sealed delivery's decision still holds: it may be sent.
    Stands,
    /// The requester failed a check: the cluster may sign this refusal, naming `request` (the key of
    /// the request as the chain recorded it, [`crate::protocol::request_key`]).
    Refuse {
        /// The refusal code.
        reason: Refusal,
        /// What failed, for the log.
        detail: String,
        /// The request key the refusal names.
        request: B256,
    },
    /// This holder cannot judge (a simulated quote the policy allows but it does not trust): leave
    /// the request to other holders.
    Abstain(String),
    /// Answered already (or cancelled): nothing to do.
    Answered(RequestStatus),
    /// The contract's cluster (this address) is not the one whose key this holder holds.
    NotHolder(Address),
    /// Not now.
    Wait(Wait<E>),
}

/// The gate's answer and, when the kernel's pipeline ran, how long it took (the caller's
/// verification latency metric: a monotonic clock read, nothing the verdict depends on).
#[derive(Debug)]
pub struct Decided<E> {
    /// What to do.
    pub verdict: Verdict<E>,
    /// The pipeline's running time, if it ran.
    pub verified_in: Option<Duration>,
}

/// Decide `question` on `state`.
pub async fn decide<S: ChainState>(gate: &Gate<'_>, state: &S, question: Question<'_>) -> Decided<S::Error> {
    let mut verified_in = None;
    let verdict = match question {
        Question::Request(request) => request_verdict(gate, state, request, &mut verified_in).await,
        Question::Sealed(delivery, commitment) => still_decided(gate.clock, state, delivery, commitment).await,
    };
    Decided { verdict: verdict.unwrap_or_else(Verdict::Wait), verified_in }
}

/// A new request, in order: still pending, this holder's cluster, the request as the chain recorded
/// it, then the kernel's pipeline at the state's time under its policy and references.
async fn request_verdict<S: ChainState>(
    gate: &Gate<'_>,
    state: &S,
    claimed: &Request,
    verified_in: &mut Option<Duration>,
) -> Result<Verdict<S::Error>, Wait<S::Error>> {
    let read = |what| move |e| Wait::Unreadable(what, e);
    let status = state.status(claimed.binding.request_key()).await.map_err(read(Read::Status))?;
    if status != RequestStatus::Pending {
        return Ok(Verdict::Answered(status));
    }
    let cluster = state.cluster().await.map_err(read(Read::Cluster))?;
    if cluster != gate.cluster {
        return Ok(Verdict::NotHolder(cluster));
    }
    // The request as consensus recorded it: a lying RPC cannot show a request that is not on chain.
    let request = state.request(claimed).await.map_err(read(Read::Request))?.ok_or(Wait::NotOnChain)?;
    let policy = state.policy().await.map_err(read(Read::Policy))?;
    let ctx =
        Context { deployment: gate.deployment, verifier: gate.verifier, policy, references: state, now: state.now() };
    let started = Instant::now();
    let decision = pipeline::evaluate(&ctx, request.binding, &request.quote, &request.event_log).await;
    *verified_in = Some(started.elapsed());
    Ok(match decision {
        Decision::Accept(accepted) => Verdict::Deliver { accepted, request: Box::new(request) },
        Decision::Refuse(reason, detail) => Verdict::Refuse { reason, detail, request: request.binding.request_key() },
        Decision::Retry(why) => Verdict::Wait(Wait::Retry(why)),
        Decision::Abstain(why) => Verdict::Abstain(why),
    })
}

/// A sealed delivery: what it was decided on, read again at a newer decision point (the contract
/// checks the policy and references again when it is mined, but a delivery that would revert must
/// not leave the TD: the ciphertext is for a TD that may no longer be allowed). The decision point
/// must show the holder's commitment, so it is later than the decision whatever view the operator
/// shows, and the commitment must be younger than its bound by the monotonic clock, so the point is
/// at most that old when the delivery leaves (PROTOCOL.md §5.3).
async fn still_decided<S: ChainState>(
    clock: &dyn Clock,
    state: &S,
    d: &SignedDelivery,
    c: &Commitment,
) -> Result<Verdict<S::Error>, Wait<S::Error>> {
    let read = |what| move |e| Wait::Unreadable(what, e);
    if state.commitment(c.holder).await.map_err(read(Read::Commitment))? != c.value {
        return Err(Wait::NotCommitted);
    }
    if state.policy().await.map_err(read(Read::Policy))?.hash() != d.policy {
        return Err(Wait::Changed("the policy"));
    }
    if !state.is_allowed(d.os_ref, RefKind::Os).await.map_err(read(Read::Reference))? {
        return Err(Wait::Changed("the OS reference"));
    }
    if !state.is_allowed(d.app_ref, RefKind::App).await.map_err(read(Read::Reference))? {
        return Err(Wait::Changed("the app reference"));
    }
    if state.status(d.request).await.map_err(read(Read::Status))? != RequestStatus::Pending {
        return Err(Wait::Changed("the request's status"));
    }
    // Last, so the reads' own time counts against the bound: the delivery leaves right after this.
    let waited = clock.monotonic().saturating_duration_since(c.drawn);
    if waited > c.within {
        return Err(Wait::Late { waited, within: c.within });
    }
    Ok(Verdict::Stands)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::collateral::NoCollateral;
    use alloy::primitives::U256;
    use futures::executor::block_on;

    #[derive(Debug, thiserror::Error)]
    #[error("unreadable")]
    struct Unreadable;

    /// Chain state as a test sets it.
    struct Fake {
        policy: Policy,
        cluster: Address,
        status: Result<RequestStatus, ()>,
        allowed: Vec<B256>,
        /// What the chain recorded under the claimed request's id (None: nothing).
        recorded: Option<Request>,
        /// The holder's commitment slot.
        committed: B256,
    }

    impl References for Fake {
        type Error = Unreadable;
        async fn is_allowed(&self, id: B256, _: RefKind) -> Result<bool, Unreadable> {
            Ok(self.allowed.contains(&id))
        }
    }

    impl ChainState for Fake {
        fn now(&self) -> u64 {
            1_700_000_000
        }
        async fn policy(&self) -> Result<Policy, Unreadable> {
            Ok(self.policy)
        }
        async fn cluster(&self) -> Result<Address, Unreadable> {
            Ok(self.cluster)
        }
        async fn status(&self, _: B256) -> Result<RequestStatus, Unreadable> {
            self.status.map_err(|_| Unreadable)
        }
        async fn request(&self, _: &Request) -> Result<Option<Request>, Unreadable> {
            Ok(self.recorded.clone())
        }
        async fn commitment(&self, holder: Address) -> Result<B256, Unreadable> {
            Ok(if holder == OURS { self.committed } else { B256::ZERO })
        }
    }

    /// A clock a test sets: the wall clock anywhere, the monotonic one `elapsed` after `base`.
    struct Fixed {
        base: Instant,
        elapsed: Duration,
    }

    impl Clock for Fixed {
        fn unix(&self) -> u64 {
            // A day behind: nothing the sealed question decides may depend on it.
            1_700_000_000 - 86_400
        }
        fn monotonic(&self) -> Instant {
            self.base + self.elapsed
        }
    }

    static BASE: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

    const OURS: Address = Address::repeat_byte(0xc1);

    fn request(requester: u8) -> Request {
        // An all-zero X25519 key is a low-order point: the pipeline refuses it first, without a quote.
        let binding = RequestBinding {
            request_id: U256::from(7),
            requester: Address::repeat_byte(requester),
            hpke_pub_key: [0; 32],
        };
        Request { binding, block: 10, epoch: 1, quote: vec![1, 2, 3], event_log: Vec::new() }
    }

    fn state() -> Fake {
        Fake {
            policy: Policy {
                tcb_statuses: 1,
                allow_debug: false,
                allow_simulated: false,
                min_tcb_evaluation_data_number: 0,
            },
            cluster: OURS,
            status: Ok(RequestStatus::Pending),
            allowed: vec![B256::repeat_byte(1), B256::repeat_byte(2)],
            recorded: Some(request(0xaa)),
            committed: COMMITTED,
        }
    }

    const COMMITTED: B256 = B256::repeat_byte(0xc0);

    fn ask(state: &Fake, q: Question<'_>) -> Decided<Unreadable> {
        ask_at(state, q, Duration::from_secs(1))
    }

    /// Ask with the monotonic clock `elapsed` after the commitments' draw.
    fn ask_at(state: &Fake, q: Question<'_>, elapsed: Duration) -> Decided<Unreadable> {
        let verifier = Verifier::new(Box::new(NoCollateral));
        let clock = Fixed { base: *BASE, elapsed };
        let gate = Gate {
            deployment: Deployment { chain_id: 1, contract: Address::ZERO },
            verifier: &verifier,
            cluster: OURS,
            clock: &clock,
        };
        block_on(decide(&gate, state, q))
    }

    fn commitment() -> Commitment {
        Commitment { holder: OURS, value: COMMITTED, drawn: *BASE, within: Duration::from_secs(30) }
    }

    /// A request is judged in order (answered, not ours, not on chain) before the pipeline runs, and
    /// a refusal names the request as the chain recorded it, not as it was shown.
    #[test]
    fn a_request_is_judged_in_order_on_the_recorded_request() {
        let shown = request(0xbb);
        let answered = Fake { status: Ok(RequestStatus::Delivered), cluster: Address::ZERO, ..state() };
        assert!(matches!(
            ask(&answered, Question::Request(&shown)).verdict,
            Verdict::Answered(RequestStatus::Delivered)
        ));
        let other = Fake { cluster: Address::ZERO, recorded: None, ..state() };
        assert!(matches!(ask(&other, Question::Request(&shown)).verdict, Verdict::NotHolder(a) if a == Address::ZERO));
        let made_up = Fake { recorded: None, ..state() };
        assert!(matches!(ask(&made_up, Question::Request(&shown)).verdict, Verdict::Wait(Wait::NotOnChain)));
        let unreadable = Fake { status: Err(()), ..state() };
        let d = ask(&unreadable, Question::Request(&shown));
        assert!(matches!(d.verdict, Verdict::Wait(Wait::Unreadable(Read::Status, _))), "{:?}", d.verdict);
        assert!(d.verified_in.is_none(), "the pipeline did not run");

        let d = ask(&state(), Question::Request(&shown));
        let Verdict::Refuse { reason, request: named, .. } = d.verdict else { panic!("{:?}", d.verdict) };
        assert_eq!(reason, Refusal::InvalidPublicKey);
        assert_eq!(named, request(0xaa).binding.request_key(), "the recorded request, not the shown one");
        assert!(d.verified_in.is_some(), "the pipeline ran");
    }

    /// A delivery sealed for request 7 under `state()`'s policy and references 1 and 2.
    fn sealed() -> SignedDelivery {
        SignedDelivery {
            request_id: U256::from(7),
            request: B256::repeat_byte(9),
            policy: state().policy.hash(),
            os_ref: B256::repeat_byte(1),
            app_ref: B256::repeat_byte(2),
            encapsulated_key: Vec::new(),
            ciphertext: Vec::new(),
            signature: Vec::new(),
        }
    }

    /// A sealed delivery stands only while its policy, both references and the request's pending
    /// status all still hold, and the first thing that changed is named.
    #[test]
    fn a_sealed_delivery_stands_only_on_the_state_it_was_decided_on() {
        let d = sealed();
        let c = commitment();
        let verdict = |s: Fake| ask(&s, Question::Sealed(&d, &c)).verdict;
        assert!(matches!(verdict(state()), Verdict::Stands));
        let narrowed = Policy { tcb_statuses: 0, ..state().policy };
        let changed = |v: Verdict<Unreadable>| match v {
            Verdict::Wait(Wait::Changed(what)) => what,
            other => panic!("{other:?}"),
        };
        assert_eq!(changed(verdict(Fake { policy: narrowed, allowed: Vec::new(), ..state() })), "the policy");
        assert_eq!(changed(verdict(Fake { allowed: vec![B256::repeat_byte(2)], ..state() })), "the OS reference");
        assert_eq!(changed(verdict(Fake { allowed: vec![B256::repeat_byte(1)], ..state() })), "the app reference");
        assert_eq!(changed(verdict(Fake { status: Ok(RequestStatus::Refused), ..state() })), "the request's status");
        assert!(matches!(
            verdict(Fake { status: Err(()), ..state() }),
            Verdict::Wait(Wait::Unreadable(Read::Status, _))
        ));
    }

    /// A sealed delivery stands only on a state that shows the holder's commitment (a view from
    /// before it, e.g. one the operator froze, does not) and only while the commitment is younger
    /// than its bound by the monotonic clock, whatever the wall clock says.
    #[test]
    fn a_sealed_delivery_stands_only_after_its_commitment_and_within_its_bound() {
        let d = sealed();
        let c = commitment();
        let at = |s: Fake, secs: u64| ask_at(&s, Question::Sealed(&d, &c), Duration::from_secs(secs)).verdict;
        assert!(matches!(at(state(), 30), Verdict::Stands), "at the bound");
        // The slot holds an older commitment (or none): the state predates this batch's.
        assert!(matches!(at(Fake { committed: B256::ZERO, ..state() }, 1), Verdict::Wait(Wait::NotCommitted)));
        assert!(matches!(
            at(Fake { committed: B256::repeat_byte(0xc1), ..state() }, 1),
            Verdict::Wait(Wait::NotCommitted)
        ));
        // Another holder's commitment of the same value proves nothing for this one.
        let theirs = Commitment { holder: Address::repeat_byte(0xee), ..c };
        let v = ask_at(&state(), Question::Sealed(&d, &theirs), Duration::from_secs(1)).verdict;
        assert!(matches!(v, Verdict::Wait(Wait::NotCommitted)), "{v:?}");
        // Past the bound: given up, however fresh the header and whatever the wall clock.
        let late = at(state(), 31);
        assert!(
            matches!(late, Verdict::Wait(Wait::Late { waited, within }) if waited == Duration::from_secs(31) && within == Duration::from_secs(30)),
            "{late:?}"
        );
        // A change since the decision is named even within the bound.
        assert!(matches!(
            at(Fake { allowed: vec![B256::repeat_byte(1)], ..state() }, 1),
            Verdict::Wait(Wait::Changed("the app reference"))
        ));
    }
}
