//! Leak attribution through the guard: only an account the policy lets `investigate` may run it, every run is on
//! the audit log, and the audit entries a report cites come with inclusion proofs in a checkpoint signed for it.
use crate::guard::Guard;
use crate::{Actor, GuardError, RequestMeta};
use std::io::Read;
use wbg_forensics::{
    match_records, parse_leak, rank, AccessIndex, ForensicsError, Format, Limits, Marks, Pair,
    RecordMatch, Role, SharedPostings, StoreLookup, Suspect,
};
use wbg_policy::AdminAction;

/// How a leak's columns were read.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct LeakColumn {
    /// What the column was taken for.
    #[schema(value_type = String)]
    pub role: Role,
    /// Its header, or `(unnamed)` when it was recognised by content.
    pub column: String,
}

/// An attribution report. It names waybills, accounts and audit entries — never a name, phone or address.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Attribution {
    /// How the leak was read: `csv` or `json_lines`.
    #[schema(value_type = String)]
    pub format: Format,
    /// How its columns were understood.
    pub columns: Vec<LeakColumn>,
    /// Rows in the leak.
    pub rows: usize,
    /// Rows matched to waybills.
    pub matched: usize,
    /// Rows with clues that matched nothing.
    pub unmatched: usize,
    /// Principals shown any matched record.
    pub principals_considered: usize,
    /// Ranked suspects, best first, with evidence.
    pub suspects: Vec<Suspect>,
    /// The best pair of principals, for collusion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_pair: Option<Pair>,
    /// Each matched row: its waybills, confidence and which clues agreed.
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<RecordMatch>,
    /// The signed checkpoint (C2SP note) the evidence proofs lead to.
    pub checkpoint: String,
    /// The tree size of that checkpoint.
    pub checkpoint_size: u64,
    /// This attribution's own audit entry.
    pub audit_seq: u64,
}

/// Alerts counted per suspect, at most.
const ALERTS_COUNTED: usize = 1_000;

impl From<ForensicsError> for GuardError {
    fn from(e: ForensicsError) -> Self {
        match e {
            ForensicsError::TooLarge { .. } | ForensicsError::TooManyRecords { .. } => {
                GuardError::TooLarge(e.to_string())
            }
            ForensicsError::NotText { .. }
            | ForensicsError::Empty
            | ForensicsError::RowTooLong { .. }
            | ForensicsError::BadJson { .. }
            | ForensicsError::NoUsableColumn
            | ForensicsError::BadCsv { .. } => GuardError::Invalid(e.to_string()),
            ForensicsError::Store(s) => s.into(),
            ForensicsError::Io(_)
            | ForensicsError::Index(_)
            | ForensicsError::Db(_)
            | ForensicsError::Entry { .. } => GuardError::internal_from("forensics", e),
        }
    }
}

impl Guard {
    /// Runs `f` on the access index, opening it on first use; the index is held for the duration.
    fn with_access_index<T>(
        &self,
        f: impl FnOnce(&mut AccessIndex) -> Result<T, GuardError>,
    ) -> Result<T, GuardError> {
        let mut slot = self
            .access
            .lock()
            .map_err(|_| GuardError::internal("access index lock poisoned"))?;
        let index = match &mut *slot {
            Some(index) => index,
            empty => empty.insert(AccessIndex::open(&self.access_path)?),
        };
        f(index)
    }

    /// Brings the access index up to date with the audit log, reading at most `max` entries when given (upkeep
    /// bounds its share so that checkpoint signing beside it is never held up by a first indexing of a long
    /// log); `progress(done, total)` after each batch. Returns the entries read.
    pub fn index_accesses(
        &self,
        max: Option<u64>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, GuardError> {
        if self.store.keeps_access_index() {
            // The store keeps it, for every node of the store: there is nothing for this node to copy.
            return Ok(0);
        }
        self.with_access_index(|index| Ok(index.catch_up(self.store.as_ref(), max, progress)?))
    }

    /// Attributes a leaked sample: reads it within `limits`, matches its rows through the blind indexes, and ranks
    /// every principal that was shown the matched waybills. Auditors only; the run is audited.
    pub fn attribute(
        &self,
        actor: Actor<'_>,
        leak: impl Read,
        limits: &Limits,
        meta: &RequestMeta,
    ) -> Result<Attribution, GuardError> {
        let (_, mut entry) =
            self.admin(actor, AdminAction::Investigate, "leak_attribution", meta)?;
        let leak = parse_leak(leak, limits)?;
        let matching = match_records(
            &leak.records,
            self.vault.blind(),
            &StoreLookup(self.store.as_ref()),
        )?;
        let universe = self.store.waybill_count()?;
        let blind = self.vault.blind();
        // An export file's rows are in an order keyed to it (see `export`).
        let order = |principal: &str, waybill: &str| {
            let id = principal.strip_prefix("export:")?;
            Some(blind.list_order(id, waybill))
        };
        let canaries = self.canary_numbers();
        let marks = Marks {
            canaries: &canaries,
            order: &order,
        };
        let mut waybills: Vec<String> = matching
            .matched
            .iter()
            .flat_map(|r| r.waybills.iter().cloned())
            .collect();
        waybills.sort_unstable();
        waybills.dedup();
        let ranking = match self.store.shared_access(&waybills)? {
            Some(shared) => rank(&matching, &SharedPostings::new(shared), universe, &marks)?,
            None => self.with_access_index(|index| {
                index.catch_up(self.store.as_ref(), None, &mut |_, _| {})?;
                Ok(rank(&matching, index, universe, &marks)?)
            })?,
        };
        entry.detail = Some(format!(
            "rows={} matched={} suspects={}{}",
            leak.rows,
            matching.matched.len(),
            ranking.suspects.len(),
            ranking
                .suspects
                .first()
                .map(|s| format!(" top={}", s.principal))
                .unwrap_or_default()
        ));
        let audit_seq = self.store.append_audit(entry)?;
        let (checkpoint_size, checkpoint) = self.signed_checkpoint()?;
        let mut suspects = ranking.suspects;
        for s in &mut suspects {
            // An export file answers through the accounts that asked for it and approved it.
            if let Some(origin) = self.export_origin(&s.principal) {
                s.role = Some("export".into());
                s.export = Some(origin);
            }
            let account = match wbg_core::AccountId::parse(&s.principal) {
                Ok(id) => self.store.account(&id)?,
                Err(_) => None,
            };
            if let Some(a) = account {
                s.role = Some(a.role.as_str().to_owned());
                s.status = Some(a.status.as_str().to_owned());
                let alerts = self.store.alerts(&wbg_store::AlertFilter {
                    account: Some(s.principal.clone()),
                    limit: ALERTS_COUNTED,
                    ..wbg_store::AlertFilter::default()
                })?;
                s.alerts = Some(alerts.len());
            }
            for ev in &mut s.evidence {
                if ev.seq < checkpoint_size {
                    ev.proof = self
                        .inclusion_proof(ev.seq, checkpoint_size)?
                        .iter()
                        .map(hex::encode)
                        .collect();
                }
            }
        }
        // Among principals the accesses cannot tell apart, the one the risk engine flagged more comes first.
        suspects.sort_by_key(|s| (s.rank, std::cmp::Reverse(s.alerts.unwrap_or(0))));
        Ok(Attribution {
            format: leak.format,
            columns: leak
                .columns
                .into_iter()
                .map(|(role, column)| LeakColumn { role, column })
                .collect(),
            rows: leak.rows,
            matched: matching.matched.len(),
            unmatched: matching.unmatched,
            principals_considered: ranking.principals_considered,
            suspects,
            top_pair: ranking.top_pair,
            records: matching.matched,
            checkpoint,
            checkpoint_size,
            audit_seq,
        })
    }
}
