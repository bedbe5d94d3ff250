//! Times as people and programs give them: ms since the epoch, ISO 8601 / RFC 3339 with an offset
//! (`2026-12-03T08:00:00+08:00`, `…Z`), a local date or date and time without an offset (read in the display
//! zone), `now`, or `now-<n>m|h|d`; and times as people read them: ISO 8601 in the display zone. The display
//! zone is an IANA zone set once per process ([`set_zone`], from the configuration's `time_zone`), China
//! Standard Time (`Asia/Shanghai`, where waybills are made) unless set; the zone database is built in, so a host
//! without tzdata shows the same times.
use crate::Millis;
use std::sync::OnceLock;

/// The zone used when none is configured.
pub const DEFAULT_ZONE: &str = "Asia/Shanghai";

static ZONE: OnceLock<(String, jiff::tz::TimeZone)> = OnceLock::new();

/// Why a zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    /// Not a zone of the IANA database.
    #[error("time_zone must be an IANA zone name such as Asia/Shanghai")]
    Unknown,
    /// The process already shows times in another zone.
    #[error("the display zone is already set to {0}")]
    AlreadySet(String),
}

/// Sets the display zone of this process (once; setting the same zone again is fine).
pub fn set_zone(name: &str) -> Result<(), ZoneError> {
    let tz = jiff::tz::db().get(name).map_err(|_| ZoneError::Unknown)?;
    let set = ZONE.get_or_init(|| (name.to_owned(), tz));
    if set.0 == name {
        Ok(())
    } else {
        Err(ZoneError::AlreadySet(set.0.clone()))
    }
}

/// The display zone's name.
pub fn zone_name() -> &'static str {
    zone().0.as_str()
}

fn zone() -> &'static (String, jiff::tz::TimeZone) {
    ZONE.get_or_init(|| {
        let tz = jiff::tz::db()
            .get(DEFAULT_ZONE)
            .unwrap_or_else(|_| jiff::tz::TimeZone::fixed(jiff::tz::offset(8)));
        (DEFAULT_ZONE.to_owned(), tz)
    })
}

/// Why a time did not parse. It never repeats what was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "give ms since the epoch, an ISO 8601 time (2026-12-03T08:00:00+08:00; without an offset, the display \
     zone's), a date (2026-12-03), now, or now-<n>m|h|d"
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
    use time::{Date, OffsetDateTime, PrimitiveDateTime};
    if let Ok(t) = OffsetDateTime::parse(text, &Iso8601::DEFAULT) {
        return i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok();
    }
    // Without an offset: the display zone's wall clock.
    let local = |t: PrimitiveDateTime| {
        let civil = jiff::civil::DateTime::new(
            i16::try_from(t.year()).ok()?,
            i8::try_from(u8::from(t.month())).ok()?,
            i8::try_from(t.day()).ok()?,
            i8::try_from(t.hour()).ok()?,
            i8::try_from(t.minute()).ok()?,
            i8::try_from(t.second()).ok()?,
            i32::try_from(t.nanosecond()).ok()?,
        )
        .ok()?;
        let zoned = civil.to_zoned(zone().1.clone()).ok()?;
        Some(zoned.timestamp().as_millisecond())
    };
    if let Ok(t) = PrimitiveDateTime::parse(text, &Iso8601::DEFAULT) {
        return local(t);
    }
    const DATE: iso8601::EncodedConfig = iso8601::Config::DEFAULT.encode();
    if let Ok(d) = Date::parse(text, &Iso8601::<DATE>) {
        return local(PrimitiveDateTime::new(d, time::Time::MIDNIGHT));
    }
    None
}

/// A time as ISO 8601 in the display zone, to the second, with its offset: `2026-12-03T19:31:10+08:00` (what
/// people read, and what [`parse_when`] reads back).
pub fn display(ms: Millis) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t
            .to_zoned(zone().1.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
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

/// [`deserialize`] for a time that may be left out (with `#[serde(default)]`) or `null`.
pub fn deserialize_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Given(#[serde(deserialize_with = "deserialize")] Millis);
    Ok(<Option<Given> as serde::Deserialize>::deserialize(d)?.map(|Given(ms)| ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zone_is_an_iana_one_and_set_once() {
        assert_eq!(set_zone("Mars/Olympus"), Err(ZoneError::Unknown));
        assert_eq!(set_zone(DEFAULT_ZONE), Ok(()));
        assert_eq!(set_zone(DEFAULT_ZONE), Ok(()), "the same again is fine");
        assert_eq!(
            set_zone("Europe/Berlin"),
            Err(ZoneError::AlreadySet(DEFAULT_ZONE.into()))
        );
        assert_eq!(zone_name(), DEFAULT_ZONE);
        // Another zone, with summer time, as a process configured for it would show it.
        let berlin = jiff::tz::db().get("Europe/Berlin").unwrap();
        let t = jiff::Timestamp::from_millisecond(1_782_000_000_000).unwrap();
        assert_eq!(t.to_zoned(berlin).strftime("%:z").to_string(), "+02:00");
    }

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
