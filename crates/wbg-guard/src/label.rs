//! Privacy labels [T4]: a print job is a guarded, audited read for the purpose `label`, which never yields more
//! than the masked view, turned into a label whose QR code holds an opaque token instead of the data; and the
//! courier app's resolution of that token, which is a guarded read of its own, decided by the policy at the
//! moment of the scan.
use crate::read::Via;
use crate::{Guard, GuardError, ReadRequest, RequestMeta, WaybillView};
use base64::Engine as _;
use wbg_core::{Millis, Purpose, View, WaybillNo};
use wbg_label::{Format, Label, Party};

/// How long after printing a label's token can be resolved: a parcel's life in the network, with room. The
/// token only names the waybill; what its holder may see is the policy's decision at the time.
pub const LABEL_TOKEN_TTL_MS: Millis = 30 * 86_400_000;

/// What every label token starts with (so scanners tell it from a waybill number).
pub const LABEL_TOKEN_PREFIX: &str = "WBG1.";

/// The vault context label tokens are sealed for.
const CONTEXT: &str = "label";

/// Longest label token accepted for resolution (a real one is about 90 characters).
const MAX_TOKEN_LEN: usize = 256;

/// A label print job's result: the label to render, and the audit entry of the print.
#[derive(Debug, Clone)]
pub struct PrintedLabel {
    /// What goes on the label.
    pub label: Label,
    /// The print job's audit entry.
    pub audit_seq: u64,
}

fn party(p: &crate::PartyView) -> Party {
    Party {
        name: p.name.clone(),
        phone: p.phone.clone(),
        region: format!(
            "{} {} {}",
            p.address.province, p.address.city, p.address.district
        ),
    }
}

/// A print job's read: the purpose `label`, no ticket.
fn print_request(waybill_no: &str) -> ReadRequest<'_> {
    ReadRequest {
        waybill_no,
        purpose: "label",
        ticket: None,
    }
}

fn not_printable() -> GuardError {
    GuardError::Forbidden("no label of this waybill is permitted".into())
}

/// What a print job's view puts on a label: the waybill and both parties. The label purpose never permits more
/// than the masked view (`Purpose::may_need_full`); a label is made from a masked view with both parties or not
/// at all (the read path counts the print, in the read's commit, on the same terms: `Guard::makes_label`).
fn printable(view: &WaybillView) -> Result<(WaybillNo, Party, Party), GuardError> {
    match (view.view, &view.recipient, &view.sender) {
        (View::Masked, Some(r), Some(s)) => {
            Ok((WaybillNo::parse(&view.waybill_no)?, party(r), party(s)))
        }
        _ => Err(not_printable()),
    }
}

/// A token's plaintext: expiry, issue time (ms, big-endian), then the waybill number.
fn token_plain(no: &WaybillNo, issued: Millis, expires: Millis) -> Vec<u8> {
    [
        &expires.to_be_bytes()[..],
        &issued.to_be_bytes(),
        no.as_str().as_bytes(),
    ]
    .concat()
}

impl Guard {
    /// A label print job for waybill `waybill_no`, by the account holding `token` (a print station, or a
    /// merchant printing its own): a guarded read for the purpose `label`, audited with the format. The label
    /// carries the masked view only, a count of earlier prints, and a fresh QR token.
    pub fn print_label(
        &self,
        token: &str,
        waybill_no: &str,
        format: Format,
        meta: &RequestMeta,
    ) -> Result<PrintedLabel, GuardError> {
        futures_executor::block_on(self.print_label_async(token, waybill_no, format, meta))
    }

    /// [`Guard::print_label`] for async callers: the read, whose commit counts the print with its entry, is
    /// awaited (the synchronous one runs this very future on the calling thread).
    pub async fn print_label_async(
        &self,
        token: &str,
        waybill_no: &str,
        format: Format,
        meta: &RequestMeta,
    ) -> Result<PrintedLabel, GuardError> {
        let req = print_request(waybill_no);
        let read = self
            .read_via_async(token, &req, meta, Via::Print(format))
            .await?;
        let parts = printable(&read.view)?;
        let copy = read.copy.ok_or_else(not_printable)?;
        self.printed(&read.view, parts, self.clock.now(), copy, format)
    }

    /// The label of a print job whose read gave `view` (and `printable` made `parts` of) and whose count made
    /// it copy `copy`.
    fn printed(
        &self,
        view: &WaybillView,
        (no, recipient, sender): (WaybillNo, Party, Party),
        now: Millis,
        copy: u32,
        format: Format,
    ) -> Result<PrintedLabel, GuardError> {
        metrics::counter!("wbguard_label_prints_total", "format" => format.as_str()).increment(1);
        if copy > 1 {
            metrics::counter!("wbguard_label_reprints_total").increment(1);
        }
        Ok(PrintedLabel {
            label: Label {
                waybill_no: view.waybill_no.clone(),
                origin_outlet: view.origin_outlet.clone(),
                destination_outlet: view.destination_outlet.clone(),
                recipient,
                sender,
                token: self.label_token(&no, now, now + LABEL_TOKEN_TTL_MS)?,
                copy,
            },
            audit_seq: view.audit_seq,
        })
    }

    /// A label token for `no`, valid from `issued` until `expires`; made only for a print job, so that every
    /// token in circulation has its print on record.
    fn label_token(
        &self,
        no: &WaybillNo,
        issued: Millis,
        expires: Millis,
    ) -> Result<String, GuardError> {
        let sealed = self
            .vault
            .seal_token(CONTEXT, &token_plain(no, issued, expires))?;
        Ok(format!(
            "{LABEL_TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
        ))
    }

    /// The waybill and expiry a label token holds, or `None` when it is not one of this store's tokens.
    fn open_label_token(&self, label_token: &str) -> Option<(WaybillNo, Millis)> {
        let body = label_token.strip_prefix(LABEL_TOKEN_PREFIX)?;
        if body.len() > MAX_TOKEN_LEN {
            return None;
        }
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .ok()?;
        let plain = self.vault.open_token(CONTEXT, &sealed).ok()?;
        let expires = Millis::from_be_bytes(plain.get(..8)?.try_into().ok()?);
        let no = WaybillNo::parse(std::str::from_utf8(plain.get(16..)?).ok()?).ok()?;
        Some((no, expires))
    }

    /// A courier app resolving a label's QR token: the token names the waybill, and the view is the guard's
    /// decision for this account and `purpose` (default `delivery`) now — the assigned courier within the
    /// delivery window sees the recipient in full, everyone else masked or nothing. A token that is forged,
    /// altered or expired is refused, and the attempt audited.
    pub fn resolve_label(
        &self,
        token: &str,
        label_token: &str,
        purpose: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<WaybillView, GuardError> {
        let account = self.authenticate(token)?;
        let purpose = Purpose::parse(purpose.unwrap_or("delivery"))?;
        let refuse = |waybill: Option<String>, err: GuardError| {
            let mut e = self.entry(account.id.as_str(), meta, "label_resolve");
            e.waybill = waybill;
            e.purpose = Some(purpose.as_str().to_owned());
            self.deny(e, err)
        };
        let Some((no, expires)) = self.open_label_token(label_token) else {
            metrics::counter!("wbguard_label_tokens_refused_total", "why" => "invalid")
                .increment(1);
            return Err(refuse(
                None,
                GuardError::Invalid("the label token is not valid".into()),
            ));
        };
        if self.clock.now() > expires {
            metrics::counter!("wbguard_label_tokens_refused_total", "why" => "expired")
                .increment(1);
            return Err(refuse(
                Some(no.to_string()),
                GuardError::Expired("the label token has expired".into()),
            ));
        }
        let req = ReadRequest {
            waybill_no: no.as_str(),
            purpose: purpose.as_str(),
            ticket: None,
        };
        self.read_via(token, &req, meta, Via::LabelToken)
    }
}
