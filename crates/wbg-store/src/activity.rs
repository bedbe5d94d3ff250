//! When each account was last active: what dormancy is judged by. Not audited (it changes no one's rights); a
//! guard records it at most about hourly per account, from its upkeep, never on a request.
use crate::StoreError;
use wbg_core::{AccountId, Millis};

/// The row that holds [`AccountActivity::activity_since`] (not a valid account id).
pub const ACTIVITY_SINCE_ROW: &str = "*";

/// Where last activity is kept.
pub trait AccountActivity {
    /// Records that each account was active at the time given; a stored later time is kept.
    fn record_activity(&self, seen: &[(AccountId, Millis)]) -> Result<(), StoreError>;
    /// Every account's last recorded activity (accounts never seen are absent).
    fn last_activity(&self) -> Result<Vec<(AccountId, Millis)>, StoreError>;
    /// Since when activity has been recorded (the store, or the schema that added it, was made then): an account
    /// never seen is idle since then at the latest, so an upgrade does not find every old account dormant.
    fn activity_since(&self) -> Result<Option<Millis>, StoreError>;
}
