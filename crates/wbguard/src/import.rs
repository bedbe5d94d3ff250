//! `wbguard import`: bulk load from JSON Lines or CSV. The whole file is validated first (shape, every field,
//! duplicates within the file and against the store), so a bad file changes nothing; then it is ingested through
//! the guard in batches, each one transaction with its audit entry.
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use wbg_core::{Address, MerchantId, NewWaybill, OutletId, Party, WaybillNo};
use wbg_guard::{Actor, Guard, RequestMeta};

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 17] = [
    "waybill_no",
    "merchant",
    "origin_outlet",
    "destination_outlet",
    "sender_name",
    "sender_phone",
    "sender_province",
    "sender_city",
    "sender_district",
    "sender_detail",
    "recipient_name",
    "recipient_phone",
    "recipient_province",
    "recipient_city",
    "recipient_district",
    "recipient_detail",
    "items",
];

#[derive(Debug, Deserialize)]
struct CsvRow {
    waybill_no: String,
    merchant: String,
    origin_outlet: String,
    destination_outlet: String,
    sender_name: String,
    sender_phone: String,
    sender_province: String,
    sender_city: String,
    sender_district: String,
    sender_detail: String,
    recipient_name: String,
    recipient_phone: String,
    recipient_province: String,
    recipient_city: String,
    recipient_district: String,
    recipient_detail: String,
    items: String,
}

impl CsvRow {
    fn into_waybill(self) -> Result<NewWaybill, wbg_core::CoreError> {
        Ok(NewWaybill {
            waybill_no: WaybillNo::parse(&self.waybill_no)?,
            merchant: MerchantId::parse(&self.merchant)?,
            origin_outlet: OutletId::parse(&self.origin_outlet)?,
            destination_outlet: OutletId::parse(&self.destination_outlet)?,
            sender: Party {
                name: self.sender_name,
                phone: self.sender_phone,
                address: Address {
                    province: self.sender_province,
                    city: self.sender_city,
                    district: self.sender_district,
                    detail: self.sender_detail,
                },
            },
            recipient: Party {
                name: self.recipient_name,
                phone: self.recipient_phone,
                address: Address {
                    province: self.recipient_province,
                    city: self.recipient_city,
                    district: self.recipient_district,
                    detail: self.recipient_detail,
                },
            },
            items: self.items,
        })
    }
}

enum Format {
    Jsonl,
    Csv,
}

fn format_of(path: &Path) -> Result<Format> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("jsonl") | Some("ndjson") => Ok(Format::Jsonl),
        Some("csv") => Ok(Format::Csv),
        _ => bail!(
            "{}: the file must end in .jsonl, .ndjson or .csv",
            path.display()
        ),
    }
}

/// Calls `each(line, parsed)` for every record of the file, in order.
fn records(
    path: &Path,
    mut each: impl FnMut(usize, Result<NewWaybill, String>) -> Result<()>,
) -> Result<()> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    match format_of(path)? {
        Format::Jsonl => {
            for (i, line) in BufReader::new(file).lines().enumerate() {
                let line =
                    line.map_err(|_| anyhow::anyhow!("line {}: not valid UTF-8 text", i + 1))?;
                if line.trim().is_empty() {
                    continue;
                }
                let parsed = serde_json::from_str::<NewWaybill>(&line)
                    .map_err(|e| crate::server::json_error_message(&e));
                each(i + 1, parsed)?;
            }
        }
        Format::Csv => {
            let mut rdr = csv::Reader::from_reader(file);
            let headers = rdr.headers().context("cannot read the CSV header")?.clone();
            if headers.iter().collect::<Vec<_>>() != CSV_COLUMNS {
                bail!("the CSV header must be exactly: {}", CSV_COLUMNS.join(","));
            }
            for (i, row) in rdr.deserialize::<CsvRow>().enumerate() {
                let line = i + 2;
                let parsed = match row {
                    Ok(r) => r.into_waybill().map_err(|e| e.to_string()),
                    // csv errors can quote a field; say only where the row is broken.
                    Err(_) => Err("the row does not have the 17 columns of the header".to_owned()),
                };
                each(line, parsed)?;
            }
        }
    }
    Ok(())
}

/// Imports `path`; returns the number of waybills stored.
pub fn run(guard: &Guard, path: &Path, batch_size: usize) -> Result<usize> {
    let batch_size = batch_size.clamp(1, 10_000);
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    let mut total = 0usize;
    records(path, |line, parsed| {
        let problem = match parsed.and_then(|w| w.validated().map_err(|e| e.to_string())) {
            Err(p) => Some(p),
            Ok(w) if !seen.insert(w.waybill_no.clone()) => Some(format!(
                "waybill {} appears twice in the file",
                w.waybill_no
            )),
            Ok(w) => match guard.store().waybill(&w.waybill_no) {
                Ok(Some(_)) => Some(format!("waybill {} exists already", w.waybill_no)),
                Ok(None) => None,
                Err(e) => return Err(e.into()),
            },
        };
        match problem {
            Some(p) if errors.len() < 20 => errors.push(format!("line {line}: {p}")),
            Some(_) => {}
            None => total += 1,
        }
        Ok(())
    })?;
    if !errors.is_empty() {
        bail!(
            "nothing was imported; fix these first:\n  {}",
            errors.join("\n  ")
        );
    }

    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} waybills  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let meta = RequestMeta::default();
    let mut stored = 0usize;
    let mut pending = Vec::with_capacity(batch_size);
    let mut flush = |pending: &mut Vec<NewWaybill>| -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let n = pending.len();
        guard
            .ingest(Actor::Local("import"), std::mem::take(pending), &meta)
            .with_context(|| format!("stopped after {stored} waybills"))?;
        stored += n;
        guard.store().maintain()?;
        bar.inc(n as u64);
        Ok(())
    };
    records(path, |_, parsed| {
        if let Ok(w) = parsed {
            pending.push(w);
            if pending.len() >= batch_size {
                flush(&mut pending)?;
            }
        }
        Ok(())
    })?;
    flush(&mut pending)?;
    bar.finish_and_clear();
    Ok(stored)
}
