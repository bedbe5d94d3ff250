//! Privacy numbers as the store keeps them: the pool, each number's current binding, and the waybills waiting
//! for a number while the pool is exhausted.
use wbg_core::{AccountId, Millis, WaybillNo};

/// A privacy number bound to a waybill's recipient for one courier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberBinding {
    /// The virtual number (normalised digits).
    pub number: String,
    /// The waybill whose recipient it reaches.
    pub waybill_no: WaybillNo,
    /// The courier it was bound for.
    pub courier: AccountId,
    /// When it was bound (or last rebound).
    pub bound_at: Millis,
}

/// When a bound number may go to another waybill, judged from its waybill's own state: `grace_ms` after it was
/// signed for, or as soon as it left delivery otherwise, and in either case only after `quarantine_ms` more, so
/// that a number a recipient or a courier still has at hand does not reach someone else straight away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberRelease {
    /// How long after signing the binding stays valid.
    pub grace_ms: Millis,
    /// How long a released number rests before it is bound again.
    pub quarantine_ms: Millis,
}

/// What [`crate::Numbers::bind_number`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindOutcome {
    /// A free number was bound.
    Bound(NumberBinding),
    /// The waybill kept its number, now for another courier (`from` had it before).
    Rebound {
        /// The binding as it is now.
        binding: NumberBinding,
        /// The courier it was bound for until now.
        from: AccountId,
    },
    /// The waybill already had its number for this courier.
    Kept(NumberBinding),
    /// No number is free: the waybill waits for one.
    Exhausted,
    /// The waybill is no longer out for delivery with this courier: nothing to bind (nothing is audited).
    NotNeeded,
}

impl BindOutcome {
    /// Whether a waybill whose row reads `(status, courier)` (`None`: no such waybill) still needs a number for
    /// `courier`: it is out for delivery with them.
    pub fn needed(current: Option<(&str, Option<&str>)>, courier: &AccountId) -> bool {
        matches!(current, Some(("out_for_delivery", Some(c))) if c == courier.as_str())
    }

    /// What binding waybill `no` for `courier` at `now` comes to, once it is [needed](Self::needed): the number
    /// it `had` (kept, or rebound when the courier changed), else the `free` one (looked up only when it had
    /// none), else exhaustion. Every backend decides with this and then writes the outcome.
    pub fn decide(
        no: &WaybillNo,
        courier: &AccountId,
        now: Millis,
        had: Option<NumberBinding>,
        free: Option<String>,
    ) -> BindOutcome {
        let binding = |number: String| NumberBinding {
            number,
            waybill_no: no.clone(),
            courier: courier.clone(),
            bound_at: now,
        };
        match (had, free) {
            (Some(had), _) if had.courier == *courier => BindOutcome::Kept(had),
            (Some(had), _) => BindOutcome::Rebound {
                binding: binding(had.number),
                from: had.courier,
            },
            (None, Some(number)) => BindOutcome::Bound(binding(number)),
            (None, None) => BindOutcome::Exhausted,
        }
    }
}

/// The pool after [`crate::Numbers::sync_number_pool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolSync {
    /// Numbers added to the pool.
    pub added: u64,
    /// Numbers no longer configured: never bound again (a live binding still routes until it ends).
    pub retired: u64,
    /// Numbers in service.
    pub in_service: u64,
}

/// The pool's state for an operator: how many numbers are in service, free to bind now, and how many
/// waybills wait for one. An exhausted pool means couriers see masked phones instead of a number to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolState {
    /// Numbers in service (not retired).
    pub in_service: u64,
    /// Numbers in service that could be bound now (the test of [`FREE_NUMBER_SQL`]).
    pub free: u64,
    /// Waybills out for delivery waiting for a number.
    pub waiting: u64,
}

/// Which numbers are free: never bound, or bound to a waybill that is gone or whose binding ended (signed `$1` =
/// grace ago, or out of delivery) at least `$2` = quarantine before `$3` = now. A waybill back out for delivery,
/// or still out with another courier while its rebinding waits in the queue, keeps its number.
macro_rules! free_numbers {
    ($select:literal, $rest:literal) => {
        concat!(
            $select,
            " FROM privacy_numbers p LEFT JOIN waybills w ON w.no = p.waybill_no
    WHERE NOT p.retired AND (p.waybill_no IS NULL OR w.no IS NULL
       OR (w.status = 'signed' AND w.signed_at + $1 + $2 <= $3)
       OR (w.status NOT IN ('out_for_delivery', 'signed') AND w.updated_at + $2 <= $3))",
            $rest
        )
    };
}

/// The free number rested longest (see `free_numbers!` for which are free). Every backend runs this one
/// statement.
pub const FREE_NUMBER_SQL: &str = free_numbers!(
    "SELECT p.number",
    " ORDER BY p.bound_at IS NOT NULL, p.bound_at LIMIT 1"
);

/// [`FREE_NUMBER_SQL`] for binders that run side by side (PostgreSQL's), with `$4` the numbers this binder has
/// passed over already: the `$5` free numbers rested longest that no other binder holds, locked for this binder's
/// transaction (another binder's number is skipped, not waited for), in rest order. A binder of many waybills
/// takes their numbers in one walk of the pool's rest order: one walk a waybill went past every number the
/// binder (and each binder beside it) had taken before, which made a batch's bindings quadratic. The lock holds a
/// number's row, not the waybill it was last bound to, so the binder then takes them with
/// [`TAKE_FREE_NUMBERS_SQL`], which asks again whether each is free.
pub const FREE_NUMBERS_SKIP_LOCKED_SQL: &str = free_numbers!(
    "SELECT p.number",
    " AND NOT (p.number = ANY($4::text[]))
    ORDER BY p.bound_at IS NOT NULL, p.bound_at LIMIT $5 FOR UPDATE OF p SKIP LOCKED"
);

/// Binds numbers `$4` to waybills `$5` for couriers `$6` (arrays, pairwise) at `$3`, each only if it is still
/// free by the test of [`FREE_NUMBER_SQL`] (`$1` grace, `$2` quarantine, `$3` now) when this statement starts;
/// returns the numbers bound. One left out was taken meanwhile (the waybill it was bound to went back out for
/// delivery). The caller holds the numbers' rows ([`FREE_NUMBERS_SKIP_LOCKED_SQL`]), so nothing else can bind
/// them before this commits.
pub const TAKE_FREE_NUMBERS_SQL: &str = concat!(
    "UPDATE privacy_numbers q SET waybill_no = u.no, courier = u.courier, bound_at = $3
     FROM UNNEST($4::text[], $5::text[], $6::text[]) AS u(number, no, courier)
     WHERE q.number = u.number AND q.number IN (",
    free_numbers!("SELECT p.number", " AND p.number = ANY($4::text[])"),
    ") RETURNING q.number"
);

/// How many numbers are free, by the same test as [`FREE_NUMBER_SQL`], with the same parameters.
pub const FREE_NUMBER_COUNT_SQL: &str = free_numbers!("SELECT count(*)", "");
