//! Leak intake: reads a leaked sample, CSV or JSON Lines, as leaks really look (extra, missing or unnamed
//! columns, phones with spaces, `+86`, dashes or partly masked, names with stray or full-width spaces, partial
//! addresses) and turns every row into [`LeakRecord`] clues for matching. Reading is bounded: the size, the
//! number of records and the length of a row are capped, and binary content is refused at the first bad byte.
use crate::ForensicsError;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use unicode_normalization::UnicodeNormalization;
use wbg_vault::{mask_phone, normalize_address, normalize_name, PhoneMask};

/// How much of a leak the intake accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest leak, in bytes.
    pub max_bytes: u64,
    /// Most records.
    pub max_records: usize,
    /// Longest row or line, in bytes.
    pub max_row_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: 256 << 20,
            max_records: 1_000_000,
            max_row_bytes: 64 << 10,
        }
    }
}

/// A phone as the leak shows it.
#[derive(Clone, PartialEq, Eq)]
pub enum PhoneClue {
    /// The whole number, normalised (`13800138000`).
    Full(String),
    /// Partly masked: the masked forms it may be indexed under, the most telling first — that of earlier
    /// releases (`138****5678`) when the leak shows enough digits for it (waybills ingested before the standard
    /// mask are indexed under that form only), then the masked view's own (`138******78`, see
    /// [`wbg_vault::mask_phone`]).
    Masked(Vec<String>),
}

/// A name as the leak shows it.
#[derive(Clone, PartialEq, Eq)]
pub enum NameClue {
    /// The name, normalised (full-width folded, spaces gone).
    Full(String),
    /// Masked (`王*`, `王某`): nothing to match on, but it tells the row came from a masked view.
    Masked,
}

/// One row of a leak, reduced to what matching can use. It holds personal data, so its `Debug` shows which
/// clues it has, never their values.
#[derive(Clone, Default)]
pub struct LeakRecord {
    /// The 1-based data row (header excluded) or JSON line it came from.
    pub row: usize,
    /// A waybill number, as given.
    pub waybill_no: Option<String>,
    /// The phone.
    pub phone: Option<PhoneClue>,
    /// The name.
    pub name: Option<NameClue>,
    /// Province, city and district, when all three are known.
    pub region: Option<[String; 3]>,
    /// The whole address, normalised, when it has a street part (`normalize_address` of its parts).
    pub address: Option<String>,
}

impl std::fmt::Debug for LeakRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeakRecord")
            .field("row", &self.row)
            .field("waybill_no", &self.waybill_no.is_some())
            .field(
                "phone",
                &self.phone.as_ref().map(|p| match p {
                    PhoneClue::Full(_) => "full",
                    PhoneClue::Masked(_) => "masked",
                }),
            )
            .field(
                "name",
                &self.name.as_ref().map(|n| match n {
                    NameClue::Full(_) => "full",
                    NameClue::Masked => "masked",
                }),
            )
            .field("region", &self.region.is_some())
            .field("address", &self.address.is_some())
            .finish()
    }
}

impl LeakRecord {
    /// Whether the row shows something only a full view shows: a whole phone, an unmasked name or a street
    /// address. A row that does not could have come from a masked view as well.
    pub fn needs_full(&self) -> bool {
        matches!(self.phone, Some(PhoneClue::Full(_)))
            || matches!(self.name, Some(NameClue::Full(_)))
            || self.address.is_some()
    }

    /// Whether the row has anything that can carry a match: a waybill number, a phone (whole or masked) or a
    /// street address. A name alone is too common to.
    pub fn usable(&self) -> bool {
        self.waybill_no.is_some() || self.phone.is_some() || self.address.is_some()
    }
}

/// The format a leak was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Comma-, tab-, semicolon- or bar-separated values.
    Csv,
    /// One JSON object a line.
    JsonLines,
}

/// A leak as read.
#[derive(Debug, Clone)]
pub struct Leak {
    /// The format it was read as.
    pub format: Format,
    /// How each column was understood (`"phone" ← "手机号"`); `(unnamed)` columns were recognised by content.
    pub columns: Vec<(Role, String)>,
    /// Rows read (header excluded).
    pub rows: usize,
    /// Rows with something to match on.
    pub records: Vec<LeakRecord>,
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Waybill number.
    WaybillNo,
    /// Recipient name.
    Name,
    /// Phone.
    Phone,
    /// Province.
    Province,
    /// City.
    City,
    /// District.
    District,
    /// Street address (the part after the district).
    Detail,
    /// A whole address in one string.
    Address,
}

impl Role {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::WaybillNo => "waybill_no",
            Role::Name => "name",
            Role::Phone => "phone",
            Role::Province => "province",
            Role::City => "city",
            Role::District => "district",
            Role::Detail => "detail",
            Role::Address => "address",
        }
    }

    /// Whether a column of this role can carry a match by itself or with a name: a waybill number, a phone or a
    /// street address. Names alone are too common, and a region is shared by a district.
    pub fn identifies(self) -> bool {
        matches!(
            self,
            Role::WaybillNo | Role::Phone | Role::Address | Role::Detail
        )
    }

    /// The role a column header names, by the names leaks use (English and Chinese, any case, spacing or
    /// full-width form).
    pub fn from_header(header: &str) -> Option<Role> {
        let h: String = header
            .nfkc()
            .filter(|c| !c.is_whitespace() && !matches!(c, '_' | '-' | '.' | '\u{feff}'))
            .flat_map(char::to_lowercase)
            .collect();
        let h = h
            .strip_prefix("recipient")
            .or_else(|| h.strip_prefix("receiver"))
            .or_else(|| h.strip_prefix("consignee"))
            .or_else(|| h.strip_prefix("收件人"))
            .or_else(|| h.strip_prefix("收货人"))
            .filter(|rest| !rest.is_empty())
            .unwrap_or(&h);
        Some(match h {
            "waybillno" | "waybill" | "waybillnumber" | "trackingno" | "trackingnumber"
            | "tracking" | "expressno" | "运单号" | "快递单号" | "单号" | "物流单号" => {
                Role::WaybillNo
            }
            "name" | "recipient" | "receiver" | "consignee" | "fullname" | "姓名" | "收件人"
            | "收货人" | "名字" => Role::Name,
            "phone" | "mobile" | "tel" | "telephone" | "phonenumber" | "mobilephone"
            | "contact" | "电话" | "手机" | "手机号" | "手机号码" | "联系电话" | "联系方式" => {
                Role::Phone
            }
            "province" | "省" | "省份" => Role::Province,
            "city" | "市" | "城市" => Role::City,
            "district" | "county" | "area" | "区" | "区县" | "县区" | "县" => Role::District,
            "detail" | "street" | "addressdetail" | "detailaddress" | "详细地址" | "街道" => {
                Role::Detail
            }
            "address" | "addr" | "fulladdress" | "地址" | "收货地址" | "收件地址" => {
                Role::Address
            }
            _ => return None,
        })
    }
}

/// Opens a leak file, refusing one over `limits.max_bytes` before a byte of it is read.
pub fn open_leak(path: &Path, limits: &Limits) -> Result<std::fs::File, ForensicsError> {
    let file = std::fs::File::open(path).map_err(|e| ForensicsError::Io(e.kind().to_string()))?;
    let meta = file
        .metadata()
        .map_err(|e| ForensicsError::Io(e.kind().to_string()))?;
    if meta.is_dir() {
        return Err(ForensicsError::Io("is a directory".into()));
    }
    if meta.len() > limits.max_bytes {
        return Err(ForensicsError::TooLarge {
            limit: limits.max_bytes,
        });
    }
    Ok(file)
}

/// Reads a leak file. A file over `limits.max_bytes` is refused before a byte of it is read.
pub fn read_leak(path: &Path, limits: &Limits) -> Result<Leak, ForensicsError> {
    parse_leak(open_leak(path, limits)?, limits)
}

/// Reads a leak from any reader (a request body, a pipe), within `limits`.
pub fn parse_leak(reader: impl Read, limits: &Limits) -> Result<Leak, ForensicsError> {
    let mut input = BufReader::with_capacity(
        64 << 10,
        Bounded {
            inner: reader,
            read: 0,
            max: limits.max_bytes,
        },
    );
    // The first non-blank byte tells the format: a JSON object starts with `{`.
    let first = loop {
        let buf = input.fill_buf().map_err(stop)?;
        let Some(&b) = buf.first() else {
            return Err(ForensicsError::Empty);
        };
        let skip = if buf.starts_with(b"\xef\xbb\xbf") {
            3
        } else if b.is_ascii_whitespace() {
            1
        } else {
            break b;
        };
        input.consume(skip);
    };
    let leak = if first == b'{' {
        json_lines(input, limits)?
    } else {
        csv_rows(input, limits)?
    };
    if leak.rows == 0 {
        return Err(ForensicsError::Empty);
    }
    Ok(leak)
}

/// Why the bounded reader stopped.
#[derive(Debug)]
enum Stop {
    TooLarge(u64),
    Binary(u64),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Stop {}

fn stop(e: std::io::Error) -> ForensicsError {
    let kind = e.kind();
    match e.into_inner().map(|inner| inner.downcast::<Stop>()) {
        Some(Ok(s)) => match *s {
            Stop::TooLarge(limit) => ForensicsError::TooLarge { limit },
            Stop::Binary(at) => ForensicsError::NotText { at },
        },
        _ => ForensicsError::Io(kind.to_string()),
    }
}

/// A reader that refuses to pass more than `max` bytes or a NUL byte.
struct Bounded<R> {
    inner: R,
    read: u64,
    max: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let got = buf.get(..n).unwrap_or_default();
        if let Some(i) = got.iter().position(|&b| b == 0) {
            return Err(std::io::Error::other(Stop::Binary(self.read + i as u64)));
        }
        self.read += n as u64;
        if self.read > self.max {
            return Err(std::io::Error::other(Stop::TooLarge(self.max)));
        }
        Ok(n)
    }
}

/// Treats the usual placeholders for "nothing" as nothing.
fn present(v: &str) -> Option<&str> {
    let v = v.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}' || c == '\u{3000}');
    match v {
        "" | "-" | "--" | "null" | "NULL" | "None" | "none" | "N/A" | "n/a" | "NA" | "无" => None,
        v => Some(v),
    }
}

/// A row's values by role, as the leak gave them.
#[derive(Default)]
struct Raw<'a> {
    waybill_no: Option<&'a str>,
    name: Option<&'a str>,
    phone: Option<&'a str>,
    province: Option<&'a str>,
    city: Option<&'a str>,
    district: Option<&'a str>,
    detail: Option<&'a str>,
    address: Option<&'a str>,
}

impl<'a> Raw<'a> {
    fn set(&mut self, role: Role, value: &'a str) {
        let Some(v) = present(value) else { return };
        let slot = match role {
            Role::WaybillNo => &mut self.waybill_no,
            Role::Name => &mut self.name,
            Role::Phone => &mut self.phone,
            Role::Province => &mut self.province,
            Role::City => &mut self.city,
            Role::District => &mut self.district,
            Role::Detail => &mut self.detail,
            Role::Address => &mut self.address,
        };
        slot.get_or_insert(v);
    }

    fn record(&self, row: usize) -> LeakRecord {
        let (mut province, mut city, mut district) = (
            self.province.map(str::to_owned),
            self.city.map(str::to_owned),
            self.district.map(str::to_owned),
        );
        let mut detail = self.detail.map(str::to_owned);
        if let Some(whole) = self.address {
            let split = split_address(whole);
            province = province.or(split.province);
            city = city.or(split.city);
            district = district.or(split.district);
            if detail.is_none() && !split.rest.is_empty() {
                detail = Some(split.rest);
            }
        }
        let region = match (&province, &city, &district) {
            (Some(p), Some(c), Some(d)) => Some([p.clone(), c.clone(), d.clone()]),
            _ => None,
        };
        // A street without its region cannot rebuild the whole address the index was computed over.
        let address = match (&region, &detail) {
            (Some([p, c, d]), Some(rest)) => Some(normalize_address(&[p, c, d, rest])),
            _ => None,
        };
        LeakRecord {
            row,
            waybill_no: self
                .waybill_no
                .map(|w| w.nfkc().filter(|c| !c.is_whitespace()).collect()),
            phone: self.phone.and_then(phone_clue),
            name: self.name.and_then(name_clue),
            region,
            address,
        }
    }
}

/// Reads a phone as leaks write it: spaces, dashes, brackets, dots, `+86`/`0086`, full-width digits, and masks
/// of `*`, `x`, `#`, `•` or `×`. A masked phone is turned into the masked view's own form when the digits that
/// form shows are visible; `None` when nothing usable is left.
pub fn phone_clue(raw: &str) -> Option<PhoneClue> {
    let s: String = raw
        .nfkc()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '(' | ')' | '.' | '/'))
        .map(|c| match c {
            'x' | 'X' | '×' | '•' | '●' | '#' | '?' => '*',
            c => c,
        })
        .collect();
    if !s.contains('*') {
        return wbg_core::normalize_phone(&s).ok().map(PhoneClue::Full);
    }
    let s = strip_country(&s);
    if !s.chars().all(|c| c.is_ascii_digit() || c == '*') {
        return None;
    }
    let head: String = s.chars().take_while(char::is_ascii_digit).collect();
    let tail_len = s.chars().rev().take_while(char::is_ascii_digit).count();
    let tail = s.get(s.len() - tail_len..)?;
    let middle = s.get(head.len()..s.len() - tail_len)?;
    if !middle.chars().all(|c| c == '*') || middle.is_empty() {
        return None;
    }
    // A mobile number (11 digits from 1): the standard mask shows 3 and 2, earlier releases 3 and 4; leaks often
    // shorten or lengthen the run of stars.
    if head.len() >= 3 && tail_len >= 2 && head.starts_with('1') {
        let mut forms = Vec::new();
        if tail_len >= 4 {
            forms.push(format!("{}****{}", &head[..3], &tail[tail_len - 4..]));
        }
        forms.push(format!("{}******{}", &head[..3], &tail[tail_len - 2..]));
        return Some(PhoneClue::Masked(forms));
    }
    // Anything else must keep its length for a mask's rule to apply.
    let n = s.len();
    if n < 8 {
        return None;
    }
    let filled: String = format!("{head}{}{tail}", "0".repeat(middle.len()));
    let forms: Vec<String> = [PhoneMask::legacy(&filled), mask_phone(&filled)]
        .into_iter()
        .filter(|m| {
            m.contains(|c: char| c.is_ascii_digit())
                && m.chars().zip(s.chars()).all(|(m, c)| m == '*' || m == c)
        })
        .fold(Vec::new(), |mut v, m| {
            if !v.contains(&m) {
                v.push(m);
            }
            v
        });
    (!forms.is_empty()).then_some(PhoneClue::Masked(forms))
}

fn strip_country(s: &str) -> &str {
    for prefix in ["+86", "0086"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            return rest;
        }
    }
    match s.strip_prefix("86") {
        Some(rest) if rest.len() == 11 && rest.starts_with('1') => rest,
        _ => s,
    }
}

/// Reads a name: full-width folded and spaces removed; a masked one (`王*`, `王某`, `王**`) is only a hint.
pub fn name_clue(raw: &str) -> Option<NameClue> {
    let n = normalize_name(raw);
    if n.is_empty() {
        return None;
    }
    let masked =
        n.contains('*') || n.contains('＊') || (n.chars().count() <= 3 && n.ends_with('某'));
    Some(if masked {
        NameClue::Masked
    } else {
        NameClue::Full(n)
    })
}

/// An address string split into its region and the rest.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SplitAddress {
    pub province: Option<String>,
    pub city: Option<String>,
    pub district: Option<String>,
    pub rest: String,
}

const MUNICIPALITIES: [&str; 4] = ["北京市", "上海市", "天津市", "重庆市"];

/// Splits `浙江省杭州市萧山区建设一路66号` into province, city, district and street; municipalities
/// (`上海市浦东新区…`) are their own province and city. Spaces and full-width forms are folded first.
pub(crate) fn split_address(whole: &str) -> SplitAddress {
    let s: String = whole.nfkc().filter(|c| !c.is_whitespace()).collect();
    let mut out = SplitAddress::default();
    let mut rest = s.as_str();
    if let Some(m) = MUNICIPALITIES.iter().find(|m| rest.starts_with(*m)) {
        out.province = Some((*m).to_owned());
        out.city = Some((*m).to_owned());
        rest = &rest[m.len()..];
        rest = rest.strip_prefix(m).unwrap_or(rest);
    } else {
        if let Some((p, r)) = cut(rest, &["自治区", "特别行政区", "省"], 8) {
            out.province = Some(p.to_owned());
            rest = r;
        }
        if let Some((c, r)) = cut(rest, &["自治州", "地区", "市", "盟"], 8) {
            out.city = Some(c.to_owned());
            rest = r;
        }
    }
    if out.city.is_some() {
        if let Some((d, r)) = cut(rest, &["区", "县", "市", "旗"], 8) {
            out.district = Some(d.to_owned());
            rest = r;
        }
    }
    out.rest = rest.to_owned();
    out
}

/// The shortest prefix of `s` (at most `within` characters) ending in one of `markers`, and what follows it.
fn cut<'a>(s: &'a str, markers: &[&str], within: usize) -> Option<(&'a str, &'a str)> {
    let limit = s.char_indices().nth(within).map_or(s.len(), |(i, _)| i);
    let (at, m) = markers
        .iter()
        .filter_map(|m| s[..limit].find(m).map(|i| (i, m)))
        .filter(|(i, _)| *i > 0)
        .min_by_key(|(i, m)| (*i, std::cmp::Reverse(m.len())))?;
    let end = at + m.len();
    Some((&s[..end], &s[end..]))
}

fn json_lines(mut input: impl BufRead, limits: &Limits) -> Result<Leak, ForensicsError> {
    let mut leak = Leak {
        format: Format::JsonLines,
        columns: Vec::new(),
        rows: 0,
        records: Vec::new(),
    };
    let mut seen: Vec<(Role, String)> = Vec::new();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        number += 1;
        let n = (&mut input)
            .take(limits.max_row_bytes as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(stop)?;
        if n == 0 {
            break;
        }
        if line.len() > limits.max_row_bytes {
            return Err(ForensicsError::RowTooLong {
                row: number,
                limit: limits.max_row_bytes,
            });
        }
        let text = std::str::from_utf8(&line).map_err(|e| ForensicsError::NotText {
            at: e.valid_up_to() as u64,
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(text).map_err(|_| ForensicsError::BadJson { line: number })?;
        let Value::Object(obj) = value else {
            return Err(ForensicsError::BadJson { line: number });
        };
        leak.rows += 1;
        if leak.rows > limits.max_records {
            return Err(ForensicsError::TooManyRecords {
                limit: limits.max_records,
            });
        }
        let mut raw = Raw::default();
        let mut flat = Vec::new();
        flatten(&obj, &mut flat, 0);
        for (key, v) in &flat {
            if let Some(role) = Role::from_header(key) {
                if !seen.iter().any(|(r, k)| *r == role && k == key) {
                    seen.push((role, key.clone()));
                }
                raw.set(role, v);
            }
        }
        let record = raw.record(leak.rows);
        if record.usable() {
            leak.records.push(record);
        }
    }
    if leak.rows > 0 && !seen.iter().any(|(r, _)| r.identifies()) {
        return Err(ForensicsError::NoUsableColumn);
    }
    leak.columns = seen;
    Ok(leak)
}

/// Flattens an object into `(key, text)` pairs: a nested `recipient` object's fields come first, so that its name
/// and phone win over a sender's; a nested `address` object gives its own parts; numbers become text (a phone
/// written as a JSON number).
fn flatten(obj: &serde_json::Map<String, Value>, out: &mut Vec<(String, String)>, depth: usize) {
    if depth > 3 {
        return;
    }
    let mut nested: Vec<(&String, &serde_json::Map<String, Value>)> = obj
        .iter()
        .filter_map(|(k, v)| v.as_object().map(|o| (k, o)))
        .collect();
    // The recipient's fields first; a sender's are never taken for the recipient's.
    nested.sort_by_key(|(k, _)| !k.to_lowercase().contains("recipient") && !k.contains("收件"));
    for (k, o) in nested {
        let lk = k.to_lowercase();
        if lk.contains("sender") || k.contains("寄件") || lk.contains("shipper") {
            continue;
        }
        flatten(o, out, depth + 1);
    }
    for (k, v) in obj {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        out.push((k.clone(), text));
    }
}

fn csv_rows(input: impl Read, limits: &Limits) -> Result<Leak, ForensicsError> {
    let mut input = BufReader::with_capacity(64 << 10, input);
    let delimiter = {
        let head = input.fill_buf().map_err(stop)?;
        let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
        let line = &head[..line_end];
        let count = |d: u8| line.iter().filter(|&&b| b == d).count();
        [b',', b'\t', b';', b'|']
            .into_iter()
            .max_by_key(|d| count(*d))
            .unwrap_or(b',')
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(input);
    let mut rows: Vec<(usize, csv::StringRecord)> = Vec::new();
    let mut roles: Option<Vec<Option<Role>>> = None;
    let mut columns = Vec::new();
    let mut leak = Leak {
        format: Format::Csv,
        columns: Vec::new(),
        rows: 0,
        records: Vec::new(),
    };
    let mut record = csv::StringRecord::new();
    let mut number = 0;
    loop {
        number += 1;
        let more = reader
            .read_record(&mut record)
            .map_err(|e| csv_error(e, number))?;
        if !more {
            break;
        }
        if record.as_slice().len() > limits.max_row_bytes {
            return Err(ForensicsError::RowTooLong {
                row: number,
                limit: limits.max_row_bytes,
            });
        }
        if record.iter().all(|f| present(f).is_none()) {
            continue;
        }
        if roles.is_none() && number == 1 {
            let named: Vec<Option<Role>> = record.iter().map(Role::from_header).collect();
            if named.iter().any(Option::is_some) {
                for (role, h) in named.iter().zip(record.iter()) {
                    if let Some(r) = role {
                        columns.push((*r, h.trim().to_owned()));
                    }
                }
                roles = Some(named);
                continue;
            }
        }
        leak.rows += 1;
        if leak.rows > limits.max_records {
            return Err(ForensicsError::TooManyRecords {
                limit: limits.max_records,
            });
        }
        let row = leak.rows;
        match &roles {
            Some(r) => push_row(&mut leak, r, &record, row),
            None => {
                // No header: recognise columns by what they hold, from the first rows.
                rows.push((row, record.clone()));
                if rows.len() == SNIFF_ROWS {
                    let r = sniff(&rows, &mut columns);
                    replay(&mut leak, &r, &rows);
                    rows.clear();
                    roles = Some(r);
                }
            }
        }
    }
    if roles.is_none() && !rows.is_empty() {
        let r = sniff(&rows, &mut columns);
        replay(&mut leak, &r, &rows);
        roles = Some(r);
    }
    if leak.rows > 0 && !roles.iter().flatten().flatten().any(|r| r.identifies()) {
        return Err(ForensicsError::NoUsableColumn);
    }
    leak.columns = columns;
    Ok(leak)
}

fn csv_error(e: csv::Error, row: usize) -> ForensicsError {
    match e.kind() {
        csv::ErrorKind::Utf8 { pos, .. } => ForensicsError::NotText {
            at: pos.as_ref().map_or(0, |p| p.byte()),
        },
        csv::ErrorKind::Io(_) => match e.into_kind() {
            csv::ErrorKind::Io(io) => stop(io),
            _ => ForensicsError::Io("read failed".into()),
        },
        _ => ForensicsError::BadCsv {
            row,
            problem: "malformed row".into(),
        },
    }
}

const SNIFF_ROWS: usize = 50;

/// Pushes the rows held back while the columns were being recognised.
fn replay(leak: &mut Leak, roles: &[Option<Role>], rows: &[(usize, csv::StringRecord)]) {
    for (row, r) in rows {
        push_row(leak, roles, r, *row);
    }
}

fn push_row(leak: &mut Leak, roles: &[Option<Role>], record: &csv::StringRecord, row: usize) {
    let mut raw = Raw::default();
    for (role, v) in roles.iter().zip(record.iter()) {
        if let Some(role) = role {
            raw.set(*role, v);
        }
    }
    let rec = raw.record(row);
    if rec.usable() {
        leak.records.push(rec);
    }
}

/// Guesses each column's role from the values of the first rows: phones (full or masked), waybill numbers,
/// whole addresses, and short names.
fn sniff(
    rows: &[(usize, csv::StringRecord)],
    columns: &mut Vec<(Role, String)>,
) -> Vec<Option<Role>> {
    let width = rows.iter().map(|(_, r)| r.len()).max().unwrap_or(0);
    let mut roles = vec![None; width];
    let mut taken = Vec::new();
    for (i, role) in roles.iter_mut().enumerate() {
        let values: Vec<&str> = rows
            .iter()
            .filter_map(|(_, r)| r.get(i))
            .filter_map(present)
            .collect();
        if values.is_empty() {
            continue;
        }
        let share = |f: &dyn Fn(&str) -> bool| {
            values.iter().filter(|v| f(v)).count() as f64 / values.len() as f64
        };
        let guess = if share(&|v| phone_clue(v).is_some()) >= 0.6 {
            Some(Role::Phone)
        } else if share(&|v| split_address(v).district.is_some()) >= 0.6 {
            Some(Role::Address)
        } else if share(&looks_like_waybill_no) >= 0.6 {
            Some(Role::WaybillNo)
        } else if share(&looks_like_name) >= 0.6 {
            Some(Role::Name)
        } else {
            None
        };
        if let Some(g) = guess.filter(|g| !taken.contains(g)) {
            taken.push(g);
            columns.push((g, "(unnamed)".to_owned()));
            *role = Some(g);
        }
    }
    roles
}

fn looks_like_waybill_no(v: &str) -> bool {
    let v = v.trim();
    (8..=40).contains(&v.len())
        && v.chars().all(|c| c.is_ascii_alphanumeric())
        && v.chars().any(|c| c.is_ascii_digit())
        && v.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

fn looks_like_name(v: &str) -> bool {
    let v = v.trim();
    let n = v.chars().count();
    (1..=20).contains(&n)
        && !v.chars().any(|c| c.is_ascii_digit())
        && !["省", "市", "区", "县", "州"]
            .iter()
            .any(|s| v.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(p: &str) -> Option<PhoneClue> {
        Some(PhoneClue::Full(p.to_owned()))
    }
    fn masked(forms: &[&str]) -> Option<PhoneClue> {
        Some(PhoneClue::Masked(
            forms.iter().map(|f| f.to_string()).collect(),
        ))
    }

    #[test]
    fn phones_as_leaks_write_them() {
        for raw in [
            "13800138000",
            "138 0013 8000",
            "138-0013-8000",
            "+86 138 0013 8000",
            "+86-13800138000",
            "0086 13800138000",
            "8613800138000",
            "(138)0013.8000",
            "１３８００１３８０００",
        ] {
            assert!(phone_clue(raw) == full("13800138000"), "{raw}");
        }
        for raw in [
            "138****8000",
            "138 **** 8000",
            "138xxxx8000",
            "138XXXX8000",
            "138**8000",
            "138******8000",
            "+86 138****8000",
            "138-****-8000",
            "１３８＊＊＊＊８０００",
            "1380****8000",
        ] {
            assert!(
                phone_clue(raw) == masked(&["138****8000", "138******00"]),
                "{raw}"
            );
        }
        // The standard mask's own form, as masked views and labels now show it.
        for raw in ["138******00", "138 ****** 00", "138xxxxxx00", "138****00"] {
            assert!(phone_clue(raw) == masked(&["138******00"]), "{raw}");
        }
        assert!(phone_clue("138*********").is_none(), "no trailing digits");
        assert!(phone_clue("***********").is_none());
        assert!(phone_clue("1*********0").is_none());
        assert!(phone_clue("abc").is_none());
        assert!(phone_clue("").is_none());
        // Landlines keep the view's own rule.
        assert!(phone_clue("057*****4321") == masked(&["057*****4321", "057*******21"]));
        assert!(phone_clue("057*******21") == masked(&["057*******21"]));
    }

    #[test]
    fn names_fold_and_masks_are_hints() {
        assert!(name_clue(" 王 芳 ") == Some(NameClue::Full("王芳".into())));
        assert!(name_clue("王　芳") == Some(NameClue::Full("王芳".into())));
        assert!(name_clue("Ｗａｎｇ Ｆａｎｇ") == Some(NameClue::Full("wangfang".into())));
        assert!(name_clue("王*") == Some(NameClue::Masked));
        assert!(name_clue("王某") == Some(NameClue::Masked));
        assert!(name_clue("  ").is_none());
    }

    #[test]
    fn addresses_split_into_region_and_street() {
        let s = split_address("浙江省杭州市萧山区建设一路66号");
        assert_eq!(s.province.as_deref(), Some("浙江省"));
        assert_eq!(s.city.as_deref(), Some("杭州市"));
        assert_eq!(s.district.as_deref(), Some("萧山区"));
        assert_eq!(s.rest, "建设一路66号");
        let s = split_address("上海市 浦东新区 世纪大道 100 号");
        assert_eq!(s.province.as_deref(), Some("上海市"));
        assert_eq!(s.city.as_deref(), Some("上海市"));
        assert_eq!(s.district.as_deref(), Some("浦东新区"));
        let s = split_address("上海市上海市浦东新区世纪大道100号");
        assert_eq!(s.district.as_deref(), Some("浦东新区"));
        let s = split_address("山东省青岛市市南区香港中路8号");
        assert_eq!(s.district.as_deref(), Some("市南区"));
        let s = split_address("江苏省苏州市工业园区星湖街");
        assert_eq!(s.district.as_deref(), Some("工业园区"));
        // A partial address keeps what it has.
        let s = split_address("萧山区建设一路66号");
        assert_eq!(s.province, None);
        assert_eq!(s.city, None);
    }

    #[test]
    fn a_record_needs_full_only_for_what_masked_views_never_show() {
        let csv = "name,phone,province,city,district,detail\n\
                   王*,138****8000,浙江省,杭州市,萧山区,\n\
                   王芳,138****8000,浙江省,杭州市,萧山区,\n";
        let leak = parse_leak(csv.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(leak.records.len(), 2);
        assert!(!leak.records[0].needs_full());
        assert!(leak.records[1].needs_full());
    }

    #[test]
    fn json_lines_in_the_ingest_shape_or_flat() {
        let jsonl = concat!(
            r#"{"waybill_no":"YT1","sender":{"name":"寄件人","phone":"13911112222"},"recipient":{"name":"王芳","phone":"13800138000","address":{"province":"浙江省","city":"杭州市","district":"萧山区","detail":"建设一路66号"}}}"#,
            "\n\n",
            r#"{"手机":13800138000,"收货地址":"浙江省杭州市萧山区建设一路66号","extra":[1,2]}"#,
            "\n"
        );
        let leak = parse_leak(jsonl.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(leak.format, Format::JsonLines);
        assert_eq!(leak.rows, 2);
        let r = &leak.records[0];
        // The recipient's phone, never the sender's.
        assert!(r.phone == full("13800138000"));
        assert!(r.address.is_some() && r.waybill_no.as_deref() == Some("YT1"));
        assert!(leak.records[1].phone == full("13800138000"));
        assert_eq!(leak.records[1].address, r.address);
        let bad = parse_leak(&b"{\"a\": 1}\n[1,2]\n"[..], &Limits::default());
        assert!(matches!(bad, Err(ForensicsError::BadJson { line: 2 })));
    }

    #[test]
    fn headerless_and_tab_separated_leaks_are_recognised_by_content() {
        let tsv = "\u{feff}王芳\t138 0013 8000\t浙江省杭州市萧山区建设一路66号\n\
                   李雷\t+86 139-0013-9000\t上海市浦东新区世纪大道100号\n";
        let leak = parse_leak(tsv.as_bytes(), &Limits::default()).unwrap();
        let roles: Vec<Role> = leak.columns.iter().map(|c| c.0).collect();
        assert_eq!(roles, vec![Role::Name, Role::Phone, Role::Address]);
        assert_eq!(leak.records.len(), 2);
        assert_eq!(leak.records[1].row, 2);
        assert!(leak.records[1].phone == full("13900139000"));
        // Extra, missing and ragged columns are fine.
        let csv = "备注,姓名,电话,无关\nx,王芳,13800138000,1,2,3\ny,李雷\n";
        let leak = parse_leak(csv.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(leak.rows, 2);
        assert_eq!(leak.records.len(), 1, "a bare name is not a usable record");
    }

    #[test]
    fn limits_hold_on_streams() {
        let small = Limits {
            max_bytes: 1000,
            max_records: 3,
            max_row_bytes: 100,
        };
        let many = "phone\n13800138000\n13800138001\n13800138002\n13800138003\n";
        assert!(matches!(
            parse_leak(many.as_bytes(), &small),
            Err(ForensicsError::TooManyRecords { limit: 3 })
        ));
        let long = format!("phone,note\n13800138000,{}\n", "x".repeat(200));
        assert!(matches!(
            parse_leak(long.as_bytes(), &small),
            Err(ForensicsError::RowTooLong { .. })
        ));
        let big = format!("phone\n{}", "13800138000\n".repeat(200));
        assert!(matches!(
            parse_leak(big.as_bytes(), &small),
            Err(ForensicsError::TooLarge { limit: 1000 })
        ));
        let nul = b"phone\n138001\x0038000\n";
        assert!(matches!(
            parse_leak(&nul[..], &Limits::default()),
            Err(ForensicsError::NotText { .. })
        ));
        let latin1 = b"name,phone\n\xcd\xf5\xb7\xbc,13800138000\n";
        assert!(matches!(
            parse_leak(&latin1[..], &Limits::default()),
            Err(ForensicsError::NotText { .. })
        ));
        assert!(matches!(
            parse_leak(&b"  \n\n"[..], &Limits::default()),
            Err(ForensicsError::Empty)
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_input_is_a_leak_or_a_clear_error(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let limits = Limits { max_bytes: 1024, max_records: 50, max_row_bytes: 256 };
            if let Ok(leak) = parse_leak(&data[..], &limits) {
                proptest::prop_assert!(leak.rows >= 1 && leak.rows <= 50);
                proptest::prop_assert!(leak.records.iter().all(LeakRecord::usable));
            }
        }

        #[test]
        fn every_way_of_writing_a_phone_reads_the_same(p in "1[3-9][0-9]{9}", style in 0usize..5) {
            let written = match style {
                0 => format!("+86 {} {} {}", &p[..3], &p[3..7], &p[7..]),
                1 => format!("{}-{}-{}", &p[..3], &p[3..7], &p[7..]),
                2 => format!("0086{p}"),
                3 => p.chars().map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap_or(c)).collect(),
                _ => format!("({}){}", &p[..3], &p[3..]),
            };
            proptest::prop_assert!(phone_clue(&written) == Some(PhoneClue::Full(p.clone())));
            let legacy = format!("{}****{}", &p[..3], &p[7..]);
            proptest::prop_assert!(
                phone_clue(&legacy) == Some(PhoneClue::Masked(vec![legacy.clone(), mask_phone(&p)]))
            );
            proptest::prop_assert!(phone_clue(&mask_phone(&p)) == Some(PhoneClue::Masked(vec![mask_phone(&p)])));
        }
    }

    #[test]
    fn debug_never_shows_values() {
        let csv = "name,phone,address\n王芳,13800138000,浙江省杭州市萧山区建设一路66号\n";
        let leak = parse_leak(csv.as_bytes(), &Limits::default()).unwrap();
        let shown = format!("{leak:?}");
        for secret in ["王芳", "13800138000", "建设一路", "wangfang"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
