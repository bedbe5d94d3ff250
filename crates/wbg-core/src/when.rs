//! Times as people and programs give them: ms since the epoch, ISO 8601 / RFC 3339 with an offset
//! (`2026-12-03T08:00:00+08:00`, `…Z`), a local date or date and time without an offset (read in China Standard
//! Time, UTC+8, where waybills are made), `now`, or `now-<n>m|h|d`.
use crate::Millis;

/// China Standard Time's offset from UTC, in seconds: how a time without an offset is read.
const CST_SECONDS: i32 = 8 * 3600;

/// Why a time did not parse. It never repeats what was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "give ms since the epoch, an ISO 8601 time (2026-12-03T08:00:00+08:00; without an offset, China Standard \
     Time), a date (2026-12-03), now, or now-<n>m|h|d"
)]
pub struct WhenError;

/// Parses a time (see the module); `now` is what `now` means.
pub fn parse_when(text: &str, now: Millis) -> Result<Millis, WhenError> {
    let text = text.trim();
    if !text.is_empty() && text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| WhenError);
    }
    if let Some(rest) = text.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(now);
        }
        let ago = rest
            .strip_prefix('-')
            .filter(|r| r.len() > 1)
            .ok_or(WhenError)?;
        let (n, unit) = ago.split_at(ago.len() - 1);
        let n: i64 = n.parse().map_err(|_| WhenError)?;
        let unit_ms = match unit {
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(WhenError),
        };
        return Ok(now.saturating_sub(n.saturating_mul(unit_ms)));
    }
    iso(text).ok_or(WhenError)
}

fn iso(text: &str) -> Option<Millis> {
    use time::format_description::well_known::{iso8601, Iso8601};
    use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};
    let ms = |t: OffsetDateTime| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok();
    if let Ok(t) = OffsetDateTime::parse(text, &Iso8601::DEFAULT) {
        return ms(t);
    }
    let cst = UtcOffset::from_whole_seconds(CST_SECONDS).ok()?;
    if let Ok(t) = PrimitiveDateTime::parse(text, &Iso8601::DEFAULT) {
        return ms(t.assume_offset(cst));
    }
    const DATE: iso8601::EncodedConfig = iso8601::Config::DEFAULT.encode();
    if let Ok(d) = Date::parse(text, &Iso8601::<DATE>) {
        return ms(PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_offset(cst));
    }
    None
}

/// A time as ISO 8601 in China Standard Time, to the second: `2026-12-03T19:31:10+08:00` (what people here read,
/// and what [`parse_when`] reads back).
pub fn display(ms: Millis) -> String {
    use time::{OffsetDateTime, UtcOffset};
    let Ok(cst) = UtcOffset::from_whole_seconds(CST_SECONDS) else {
        return format!("{ms} ms");
    };
    match OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => {
            let t = t.to_offset(cst);
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+08:00",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        }
        Err(_) => format!("{ms} ms"),
    }
}

/// For serde: a time given as a number (ms since the epoch) or as text [`parse_when`] reads (`now` being the
/// wall clock's).
pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Given {
        Ms(i64),
        Text(String),
    }
    match <Given as serde::Deserialize>::deserialize(d)? {
        Given::Ms(ms) => Ok(ms),
        Given::Text(t) => parse_when(&t, crate::now_millis())
            .map_err(|e| serde::de::Error::custom(format!("not a time: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_shown_in_china_standard_time_and_reads_back() {
        let t = 1_796_297_470_000;
        let shown = display(t);
        assert_eq!(shown, "2026-12-03T19:31:10+08:00");
        assert_eq!(parse_when(&shown, 0), Ok(t));
    }

    #[test]
    fn every_form_a_carrier_writes() {
        let now = 1_764_748_800_000; // 2025-12-03T08:00:00Z
        for (text, want) in [
            ("1764748800000", now),
            ("now", now),
            ("now-7d", now - 7 * 86_400_000),
            ("now-90m", now - 90 * 60_000),
            ("2025-12-03T08:00:00Z", now),
            ("2025-12-03T16:00:00+08:00", now),
            ("2025-12-03T16:00:00.250+08:00", now + 250),
            ("2025-12-03T16:00:00", now),
            ("2025-12-03T16:00", now),
            ("2025-12-04", now + 8 * 3_600_000),
        ] {
            assert_eq!(parse_when(text, now), Ok(want), "{text}");
        }
        for bad in [
            "",
            "yesterday",
            "now-",
            "now-7",
            "now-7w",
            "now+1d",
            "2025-13-01",
            "2025-12-03T25:00",
            "13800138000x",
            "99999999999999999999",
        ] {
            assert_eq!(parse_when(bad, now), Err(WhenError), "{bad:?}");
        }
        assert!(!WhenError.to_string().contains("yesterday"));
    }
}
