//! Test doubles for the trust kernel's ports, so every suite fakes the chain the same way.

use alloy::primitives::B256;
use replicatoor_core::{attest::pipeline::References, protocol::RefKind};
use std::{collections::HashMap, future::Future};

/// The contract's `isAllowed`, answered from memory: one kind per reference id (as on chain), and
/// everything not listed is not allowed (never proposed, still timelocked or revoked all read the same).
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    ids: HashMap<B256, RefKind>,
    mode: Mode,
}

#[derive(Debug, Clone, Default)]
enum Mode {
    /// Allowed iff listed with that kind.
    #[default]
    Listed,
    /// Everything is allowed: a holder that already checked the references.
    All,
    /// Every read fails with this reason, like an RPC outage.
    Unreadable(String),
}

impl AllowList {
    /// Every id of every kind is allowed.
    pub fn allow_all() -> Self {
        AllowList { mode: Mode::All, ..Self::default() }
    }

    /// Nothing is allowed.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Exactly these ids, each for its kind.
    pub fn with(ids: impl IntoIterator<Item = (B256, RefKind)>) -> Self {
        AllowList { ids: ids.into_iter().collect(), mode: Mode::Listed }
    }

    /// Every read fails with `reason` (the holder must retry, never refuse).
    pub fn unreadable(reason: &str) -> Self {
        AllowList { mode: Mode::Unreadable(reason.to_string()), ..Self::default() }
    }

    /// Allow `id` as `kind`, replacing whatever kind it had (an id has one kind on chain).
    pub fn allow(&mut self, id: B256, kind: RefKind) -> &mut Self {
        self.ids.insert(id, kind);
        self
    }

    /// Withdraw `id` (pending, revoked or never proposed: not allowed).
    pub fn withdraw(&mut self, id: B256) -> &mut Self {
        self.ids.remove(&id);
        self
    }

    /// The answer `is_allowed` gives, without a future.
    pub fn answer(&self, id: B256, kind: RefKind) -> Result<bool, ReadFailed> {
        match &self.mode {
            Mode::All => Ok(true),
            Mode::Unreadable(reason) => Err(ReadFailed(reason.clone())),
            Mode::Listed => Ok(self.ids.get(&id) == Some(&kind)),
        }
    }
}

/// A read that failed (an RPC outage, as the double was told to play).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadFailed(pub String);

impl References for AllowList {
    type Error = ReadFailed;
    fn is_allowed(&self, id: B256, kind: RefKind) -> impl Future<Output = Result<bool, ReadFailed>> + Send {
        std::future::ready(self.answer(id, kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_configured() {
        let (a, b) = (B256::repeat_byte(1), B256::repeat_byte(2));
        assert_eq!(AllowList::allow_all().answer(a, RefKind::Os), Ok(true));
        assert_eq!(AllowList::deny_all().answer(a, RefKind::Os), Ok(false));
        let mut l = AllowList::with([(a, RefKind::Os)]);
        assert_eq!(l.answer(a, RefKind::Os), Ok(true));
        assert_eq!(l.answer(a, RefKind::App), Ok(false), "listed for the other kind");
        assert_eq!(l.answer(b, RefKind::Os), Ok(false), "not listed");
        l.allow(a, RefKind::App);
        assert_eq!((l.answer(a, RefKind::Os), l.answer(a, RefKind::App)), (Ok(false), Ok(true)), "kind replaced");
        l.withdraw(a);
        assert_eq!(l.answer(a, RefKind::App), Ok(false));
        assert_eq!(AllowList::unreadable("rpc down").answer(a, RefKind::Os), Err(ReadFailed("rpc down".to_string())));
    }
}
