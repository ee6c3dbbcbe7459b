//! Which light-client updates a sync asks the beacon API for, and which it leaves unverified because
//! they could teach the store nothing. Not on the trust path (TRUST.md section 3): it reads the store
//! through a [`Follower`] and hands every update it keeps to [`Follower::feed`] (`mod.rs`, counted),
//! which checks the supermajority and has the store verify the update (`process_update`: signature,
//! branches, the clock's slot, the committees) before anything changes. The weak-subjectivity bound
//! and the bootstrap's checkpoint are checked in `mod.rs` before this runs. So a bug here can ask for
//! the wrong pages, stop early or skip an update that would have advanced the store (the sync then
//! stalls, and the verified view refuses a stale header), never make the store take an update the
//! sync committee did not sign.

use super::{follower::Follower, BeaconApi, BeaconError, SyncReport, UPDATES_PER_REQUEST};
use replicatoor_beacon::{store::is_sync_committee_update, LightClientUpdate, Network, Preset};

/// Most `updates` pages fetched in one [`super::LightClient::sync`] (32 periods each: over two years of
/// mainnet), so a server that keeps answering full pages cannot keep a sync going forever.
const MAX_UPDATE_PAGES: usize = 32;

/// The period updates from the store's period on, then the newest finality and optimistic updates,
/// each fed to `follower` as it arrives (requests and skips counted in `report`).
pub(super) async fn fetch<P: Preset>(
    api: &BeaconApi,
    network: &Network,
    follower: &mut Follower<'_, P>,
    report: &mut SyncReport,
) -> Result<(), BeaconError> {
    // Period updates: from the store's period up to the clock's, a page at a time, until the
    // server has no more (a node serves only periods it has seen). Skipped once the store is in
    // the clock's period and knows the next committee: finality/optimistic updates then suffice.
    let current_period = network.period_at_slot(report.current_slot);
    for _ in 0..MAX_UPDATE_PAGES {
        let start = follower.store().finalized_period(network);
        if start > current_period || (start == current_period && follower.store().is_next_sync_committee_known()) {
            break;
        }
        let count = (current_period - start + 1).min(UPDATES_PER_REQUEST);
        report.requests += 1;
        // In attested-slot order, at most `count` of them (api.rs).
        let updates = api.updates::<P>(network, start, count).await?;
        let served = updates.data.len() as u64;
        for update in &updates.data {
            feed(follower, update, &updates.url, report)?;
        }
        if served < count || follower.store().finalized_period(network) == start {
            break;
        }
    }

    report.requests += 1;
    if let Some(update) = api.finality_update::<P>(network).await? {
        feed(follower, &update.data, &update.url, report)?;
    }
    report.requests += 1;
    if let Some(update) = api.optimistic_update::<P>(network).await? {
        feed(follower, &update.data, &update.url, report)?;
    }
    Ok(())
}

/// Hand `update` to the follower, unless it has nothing to teach: no newer attested or finalized
/// header, and no next committee the store lacks. Verifying it could change no head (the finality
/// and optimistic updates of an idle chain repeat the head already verified), so the signature check
/// is saved.
fn feed<P: Preset>(
    follower: &mut Follower<'_, P>,
    update: &LightClientUpdate<P>,
    url: &str,
    report: &mut SyncReport,
) -> Result<(), BeaconError> {
    let store = follower.store();
    let nothing_new = update.attested_header.beacon.slot <= store.optimistic_header.beacon.slot
        && update.finalized_header.beacon.slot <= store.finalized_header.beacon.slot
        && (store.is_next_sync_committee_known() || !is_sync_committee_update(update));
    if nothing_new {
        report.skipped += 1;
        return Ok(());
    }
    follower.feed(update, url, report)
}
