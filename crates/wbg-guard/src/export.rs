//! Bulk exports: a merchant asks for its own orders of a time window, a second account (an auditor) approves,
//! and the guard hands the file over once. Every row passes the policy's `export` check at hand-over and is on
//! the audit log before it is decrypted (one entry a row, `action` `export`, so that the access index knows the
//! file as the principal `export:<id>`). Every file is watermarked for its recipient: canary rows made for it
//! alone, and its rows in an order keyed to it, so that a leak cut from it names it — even among several
//! exports of the very same rows, which coverage alone cannot tell apart.
use crate::guard::Guard;
use crate::{Actor, GuardError, RequestMeta};
use rand::Rng;
use std::collections::HashMap;
use wbg_core::{MerchantId, Purpose, Role, WaybillNo};
use wbg_policy::AdminAction;
use wbg_vault::Field;

/// Most rows one export may hold.
pub const MAX_EXPORT_ROWS: usize = 100_000;
/// Longest window one export may span: 92 days.
pub const MAX_EXPORT_WINDOW_MS: i64 = 92 * 86_400_000;
/// Most canary rows planted in one file.
const MAX_EXPORT_CANARIES: usize = 10;
/// Rows of an export its canaries are drawn from at most.
const CANARY_PROFILE_ROWS: usize = 2_000;

/// Canary rows a file of `rows` real rows gets: none below 10 rows (a canary would be a tenth of the file or
/// more; so small a file is traced by its rows and its keyed order alone), then one per hundred rows, at most
/// ten. A merchant who checks every row against its own orders can find them; nobody else can.
pub fn export_canaries(rows: usize) -> usize {
    if rows < 10 {
        0
    } else {
        (rows / 100).clamp(1, MAX_EXPORT_CANARIES)
    }
}
/// The case-file kind exports are kept under.
const KIND: &str = "export";

/// Where an export stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ExportStatus {
    /// Asked for, waiting for a second account.
    Requested,
    /// Approved; its requester may download it, once.
    Approved,
    /// Handed over.
    Delivered,
}

/// An export, as its requester and its approver see it (never which of its rows are canaries).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Export {
    /// `E` and 16 hex digits.
    pub id: String,
    /// The account that asked for it; the only one that may download it.
    pub requested_by: String,
    /// Whose orders.
    pub merchant: String,
    /// The declared purpose.
    pub purpose: String,
    /// Orders created from (ms since epoch, inclusive)…
    pub from: i64,
    /// …to (ms, exclusive).
    pub to: i64,
    /// Orders in the window when it was asked for.
    pub rows: usize,
    /// Where it stands.
    pub status: ExportStatus,
    /// When it was asked for (ms).
    pub requested_at: i64,
    /// The second account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// When it was approved (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<i64>,
    /// When it was handed over (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<i64>,
}

/// What the store keeps of an export: the export and its canary rows.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ExportCase {
    export: Export,
    #[serde(default)]
    canaries: Vec<String>,
}

/// What to export.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// Why (the policy allows `customer_service`, after-sale work).
    pub purpose: String,
    /// Orders created from (inclusive): ms since the epoch, or ISO 8601 (`2026-12-01T00:00:00+08:00`; without an
    /// offset, China Standard Time), `now`, `now-7d`…
    #[serde(deserialize_with = "wbg_core::when::deserialize")]
    #[schema(value_type = String)]
    pub from: i64,
    /// …to (exclusive), as `from`; at most 92 days after it.
    #[serde(deserialize_with = "wbg_core::when::deserialize")]
    #[schema(value_type = String)]
    pub to: i64,
}

/// A delivered export file.
#[derive(Debug, Clone)]
pub struct ExportFile {
    /// The export, now delivered.
    pub export: Export,
    /// The CSV file: a header and one row a waybill.
    pub csv: Vec<u8>,
}

/// The columns of an export file.
/// What after-sale work needs to reach a customer, no more (no sender, no items).
const COLUMNS: [&str; 7] = [
    "waybill_no",
    "recipient_name",
    "recipient_phone",
    "province",
    "city",
    "district",
    "address",
];

/// The fields a row decrypts, as the audit entry names them.
const EXPORTED: [(Field, &str); 4] = [
    (Field::RecipientName, "recipient.name"),
    (Field::RecipientPhone, "recipient.phone"),
    (Field::RecipientRegion, "recipient.region"),
    (Field::RecipientDetail, "recipient.detail"),
];

/// Whether `id` has an export id's form.
pub(crate) fn valid_export_id(id: &str) -> bool {
    id.len() == 17 && id.starts_with('E') && id[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

impl Guard {
    fn export_case(&self, id: &str) -> Result<(ExportCase, String), GuardError> {
        if !valid_export_id(id) {
            return Err(GuardError::Invalid(
                "an export id is E and 16 hex digits".into(),
            ));
        }
        self.case_file(KIND, id)
    }

    /// Exports, newest first, optionally only those with `status` (at most 1,000): the approvers' queue, for
    /// accounts that may approve exports or read the audit log (auditors, admins).
    pub fn exports(
        &self,
        actor: Actor<'_>,
        status: Option<ExportStatus>,
        meta: &RequestMeta,
    ) -> Result<Vec<Export>, GuardError> {
        self.admin_any(
            actor,
            &[AdminAction::ApproveExport, AdminAction::ReadAudit],
            "export_list",
            meta,
        )?;
        let mut out = Vec::new();
        for (id, body) in self.store.cases(KIND, 1_000)? {
            let case: ExportCase = serde_json::from_str(&body)
                .map_err(|e| GuardError::internal_from(format!("{KIND} {id} unreadable"), e))?;
            if status.is_none_or(|s| s == case.export.status) {
                out.push(case.export);
            }
        }
        out.sort_by(|a, b| (b.requested_at, &b.id).cmp(&(a.requested_at, &a.id)));
        Ok(out)
    }

    /// The requester and approver of the export file `export:<id>`, for an attribution report.
    pub(crate) fn export_origin(&self, principal: &str) -> Option<wbg_forensics::ExportOrigin> {
        let id = principal.strip_prefix("export:")?;
        let (case, _) = self.export_case(id).ok()?;
        Some(wbg_forensics::ExportOrigin {
            requested_by: case.export.requested_by,
            approved_by: case.export.approved_by,
            delivered_at: case.export.delivered_at,
        })
    }

    fn write_export(
        &self,
        case: &ExportCase,
        was: Option<&str>,
        entry: wbg_audit::AuditEntry,
    ) -> Result<u64, GuardError> {
        let body = serde_json::to_string(case)
            .map_err(|e| GuardError::internal_from("export unwritable", e))?;
        Ok(self
            .store
            .put_case(KIND, &case.export.id, &body, was, entry)?)
    }

    /// The orders of `merchant` in the window that `account` may export for `purpose`, canaries left out.
    fn exportable(
        &self,
        account: &wbg_core::Account,
        merchant: &MerchantId,
        purpose: Purpose,
        from: i64,
        to: i64,
    ) -> Result<Vec<(WaybillNo, wbg_core::WaybillMeta, Vec<u8>)>, GuardError> {
        let nos = self
            .store
            .merchant_waybills(merchant, from, to, MAX_EXPORT_ROWS + 1)?;
        if nos.len() > MAX_EXPORT_ROWS {
            return Err(GuardError::Invalid(format!(
                "the window holds more than {MAX_EXPORT_ROWS} orders; ask for a shorter one"
            )));
        }
        let canaries = self.canary_numbers();
        let holds = self.active_holds();
        let mut rows = Vec::with_capacity(nos.len());
        for no in nos {
            // A legal hold keeps its waybills out of every file but its own production.
            if canaries.contains(no.as_str()) || holds.holds(no.as_str()) {
                continue;
            }
            let Some((meta, sealed)) = self.store.waybill(&no)? else {
                continue;
            };
            // Retention destroyed its personal data: there is nothing to export.
            if self.is_shredded(meta.bucket) {
                continue;
            }
            if !self.policy().may_export(account, &meta, purpose)? {
                return Err(GuardError::Forbidden(format!(
                    "waybill {no} may not be exported for purpose {}",
                    purpose.as_str()
                )));
            }
            rows.push((no, meta, sealed));
        }
        Ok(rows)
    }

    /// Asks for an export of the caller's own orders created in `[from, to)`. The caller must be an account the
    /// policy lets `export` every one of them for the purpose (a merchant, for after-sale work); nothing is handed
    /// over until a second account approves. Audited.
    pub fn request_export(
        &self,
        token: &str,
        req: &ExportRequest,
        meta: &RequestMeta,
    ) -> Result<Export, GuardError> {
        let account = self.authenticate(token)?;
        let mut e = self.entry(account.id.as_str(), meta, "export_request");
        self.require_active(&account, &e)?;
        let checked = Purpose::parse(&req.purpose)
            .map_err(GuardError::from)
            .and_then(|purpose| {
                if req.from < 0
                    || req
                        .to
                        .checked_sub(req.from)
                        .is_none_or(|w| w <= 0 || w > MAX_EXPORT_WINDOW_MS)
                {
                    return Err(GuardError::Invalid(
                        "the window must start at or after 1970, end after it starts and span at most 92 days".into(),
                    ));
                }
                let merchant = match (account.role, &account.merchant) {
                    (Role::Merchant, Some(m)) => m.clone(),
                    _ => {
                        return Err(GuardError::Forbidden(
                            "only a merchant account exports, and only its own orders".into(),
                        ))
                    }
                };
                Ok((purpose, merchant))
            });
        let (purpose, merchant) = match checked {
            Ok(c) => c,
            Err(err) => return Err(self.deny(e, err)),
        };
        e.purpose = Some(purpose.as_str().into());
        let rows = match self.exportable(&account, &merchant, purpose, req.from, req.to) {
            Ok(rows) if rows.is_empty() => {
                return Err(self.deny(
                    e,
                    GuardError::Invalid("no orders were created in that window".into()),
                ))
            }
            Ok(rows) => rows.len(),
            Err(err) => return Err(self.deny(e, err)),
        };
        let id = format!("E{:016x}", rand::thread_rng().gen::<u64>());
        let export = Export {
            id: id.clone(),
            requested_by: account.id.to_string(),
            merchant: merchant.to_string(),
            purpose: purpose.as_str().into(),
            from: req.from,
            to: req.to,
            rows,
            status: ExportStatus::Requested,
            requested_at: e.time,
            approved_by: None,
            approved_at: None,
            delivered_at: None,
        };
        e.detail = Some(format!(
            "export={id} rows={rows} from={} to={}",
            req.from, req.to
        ));
        let case = ExportCase {
            export,
            canaries: Vec::new(),
        };
        self.write_export(&case, None, e)?;
        metrics::counter!("wbguard_exports_total", "stage" => "requested").increment(1);
        Ok(case.export)
    }

    /// An export's state: to its requester, and to accounts that may approve exports.
    pub fn export(&self, token: &str, id: &str, meta: &RequestMeta) -> Result<Export, GuardError> {
        let account = self.authenticate(token)?;
        let (case, _) = self.export_case(id)?;
        if case.export.requested_by != account.id.as_str()
            && !self
                .policy()
                .may_admin(&account, AdminAction::ApproveExport)?
        {
            let mut e = self.entry(account.id.as_str(), meta, "export_status");
            e.detail = Some(format!("export={id}"));
            return Err(self.deny(e, GuardError::Forbidden("not your export".into())));
        }
        Ok(case.export)
    }

    /// Approves an export: a second account, permitted `approve_export` (an auditor), never its requester and
    /// never the local operator tool. Audited.
    pub fn approve_export(
        &self,
        actor: Actor<'_>,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<Export, GuardError> {
        if let Actor::Local(_) = actor {
            return Err(GuardError::Forbidden(
                "an export is approved by a second account with its own token".into(),
            ));
        }
        let (approver, mut e) =
            self.admin(actor, AdminAction::ApproveExport, "export_approve", meta)?;
        e.detail = Some(format!("export={id}"));
        let (mut case, was) = match self.export_case(id) {
            Ok(c) => c,
            Err(err) => return Err(self.deny(e, err)),
        };
        if case.export.requested_by == approver.id.as_str() {
            return Err(self.deny(
                e,
                GuardError::Forbidden("an export is approved by a second account".into()),
            ));
        }
        if case.export.status != ExportStatus::Requested {
            return Err(self.deny(
                e,
                GuardError::Conflict(format!("export {id} was approved already")),
            ));
        }
        case.export.status = ExportStatus::Approved;
        case.export.approved_by = Some(approver.id.to_string());
        case.export.approved_at = Some(e.time);
        self.write_export(&case, Some(&was), e)?;
        metrics::counter!("wbguard_exports_total", "stage" => "approved").increment(1);
        Ok(case.export)
    }

    /// Hands an approved export over to its requester, once: plants its canary rows, records every row on the
    /// audit log, then decrypts them into a CSV file in the file's own keyed order.
    pub fn deliver_export(
        &self,
        token: &str,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<ExportFile, GuardError> {
        let account = self.authenticate(token)?;
        let mut e = self.entry(account.id.as_str(), meta, "export_deliver");
        e.detail = Some(format!("export={id}"));
        self.require_active(&account, &e)?;
        let (mut case, was) = match self.export_case(id) {
            Ok(c) => c,
            Err(err) => return Err(self.deny(e, err)),
        };
        let refusal = match case.export.status {
            _ if case.export.requested_by != account.id.as_str() => {
                Some(GuardError::Forbidden("not your export".into()))
            }
            ExportStatus::Requested => Some(GuardError::Conflict(format!(
                "export {id} waits for a second account's approval"
            ))),
            ExportStatus::Delivered => Some(GuardError::Conflict(format!(
                "export {id} was delivered already; ask for a new one"
            ))),
            ExportStatus::Approved => None,
        };
        if let Some(err) = refusal {
            return Err(self.deny(e, err));
        }
        let purpose = Purpose::parse(&case.export.purpose)?;
        let merchant = MerchantId::parse(&case.export.merchant)?;
        // The policy is asked again at hand-over: it may have changed, and so may the account.
        let mut rows = match self.exportable(
            &account,
            &merchant,
            purpose,
            case.export.from,
            case.export.to,
        ) {
            Ok(rows) => rows,
            Err(err) => return Err(self.deny(e, err)),
        };
        // The file is names, phones and addresses in clear: the engine meters each download like a full read (the
        // two-account approval and the single download are the allowance for its size), so an account pulling
        // export after export is rate-limited, scored and contained like any bulk reader.
        if let Some((_, first, _)) = rows.first() {
            self.meter(&account, first, purpose, &e, meta)?;
        }
        // Canary rows for this file alone: numbered from the reserve of numbers the carrier's allocator issued
        // (else from the top of the serial range), drawn from the file's own rows — the merchant's routes,
        // destinations, streets and items of the very window.
        let count = export_canaries(rows.len());
        let principal = format!("export:{id}");
        let mut numbers = self.take_reserved(count, account.id.as_str(), &principal, meta)?;
        let from_reserve = numbers.len();
        let mut made_up = wbg_sim::one_off_waybills(rand::thread_rng().gen(), count);
        numbers.extend(
            made_up
                .iter()
                .skip(from_reserve)
                .map(|w| w.waybill_no.clone()),
        );
        // Delivered (with its canaries' numbers) before a canary is planted or a row decrypted: of two downloads
        // at once, the second loses here and leaves nothing behind.
        case.export.status = ExportStatus::Delivered;
        case.export.delivered_at = Some(e.time);
        case.canaries = numbers.iter().map(|n| n.to_string()).collect();
        let now = e.time;
        e.detail = Some(format!(
            "export={id} rows={} canaries={}",
            rows.len() + count,
            count
        ));
        self.write_export(&case, Some(&was), e)?;
        let profile = self.profile_of_rows(&rows, CANARY_PROFILE_ROWS);
        let scope = crate::DrawScope {
            merchant: Some(merchant.clone()),
            ..crate::DrawScope::default()
        };
        match profile.draw(&mut rand::thread_rng(), &numbers, &scope) {
            Ok(drawn) => made_up = drawn,
            // No row of the file could be drawn from (their fields shredded, their phones not mobile numbers):
            // made up whole, routed like its rows.
            Err(_) => {
                let mut rng = rand::thread_rng();
                for (w, no) in made_up.iter_mut().zip(&numbers) {
                    w.waybill_no = no.clone();
                    if let Some((_, a, _)) = rows.get(rng.gen_range(0..rows.len().max(1))) {
                        w.origin_outlet = a.origin_outlet.clone();
                    }
                    if let Some((_, b, _)) = rows.get(rng.gen_range(0..rows.len().max(1))) {
                        w.destination_outlet = b.destination_outlet.clone();
                    }
                    w.merchant = merchant.clone();
                }
            }
        }
        let canaries = if made_up.is_empty() {
            Vec::new()
        } else {
            let mut plant = self.entry(account.id.as_str(), meta, "canary_plant");
            plant.detail = Some(format!(
                "principal={principal} count={count} numbered_from_reserve={from_reserve} drawn_from_rows={}",
                profile.len()
            ));
            self.plant(&principal, made_up, plant, meta)?
        };
        for no in &canaries {
            if let Some((meta, sealed)) = self.store.waybill(no)? {
                rows.push((no.clone(), meta, sealed));
            }
        }
        // The file's own order, keyed: a leak that keeps it names this file.
        let blind = self.vault.blind();
        rows.sort_by_cached_key(|(no, ..)| blind.list_order(id, no.as_str()));
        let entries = rows
            .iter()
            .map(|(no, wb, _)| {
                let mut r = self.entry(account.id.as_str(), meta, "export");
                r.time = now;
                r.waybill = Some(no.to_string());
                r.purpose = Some(purpose.as_str().into());
                r.view = Some("full".into());
                r.fields = EXPORTED
                    .iter()
                    .filter(|(f, _)| self.field_kept(wb.bucket, *f))
                    .map(|(_, n)| (*n).to_owned())
                    .collect();
                r.detail = Some(format!("export={id}"));
                r
            })
            .collect();
        self.store.append_audit_batch(entries)?;
        // A street address retention destroyed is left empty (contact or region gone: the row was left out).
        let fields = |bucket: i64| -> Vec<Field> {
            EXPORTED
                .iter()
                .map(|(f, _)| *f)
                .filter(|f| self.field_kept(bucket, *f))
                .collect()
        };
        let mut out = csv::Writer::from_writer(Vec::new());
        let csv_err = |e: csv::Error| GuardError::internal_from("export file", e);
        out.write_record(COLUMNS).map_err(csv_err)?;
        for (no, meta, sealed) in &rows {
            let opened: HashMap<Field, String> = self
                .vault
                .open_fields(no, meta.bucket, sealed, &fields(meta.bucket))?
                .into_iter()
                .collect();
            let get = |f: Field| opened.get(&f).map(String::as_str).unwrap_or("");
            let (p, c, d) =
                wbg_vault::split_region(get(Field::RecipientRegion)).unwrap_or(("", "", ""));
            out.write_record([
                no.as_str(),
                get(Field::RecipientName),
                get(Field::RecipientPhone),
                p,
                c,
                d,
                get(Field::RecipientDetail),
            ])
            .map_err(csv_err)?;
        }
        let csv = out
            .into_inner()
            .map_err(|e| GuardError::internal_from("export file", e))?;
        metrics::counter!("wbguard_exports_total", "stage" => "delivered").increment(1);
        Ok(ExportFile {
            export: case.export,
            csv,
        })
    }
}
