//! `wbguard breach`: an incident's impact report (JSON, CSV or Markdown), and its notification list.
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;
use wbg_guard::{Actor, Guard, IncidentRequest, RequestMeta};

/// A time as the command line takes it (see [`wbg_core::when`]): ms since the epoch, ISO 8601, a date, `now`,
/// or `now-<n><m|h|d>`.
pub fn parse_time(text: &str, now: i64) -> Result<i64> {
    wbg_core::when::parse_when(text, now)
        .map_err(|e| anyhow::anyhow!("{text:?} is not a time: {e}"))
}

/// Writes `bytes` to `out`, or to stdout.
fn emit(out: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
        }
        None => Ok(std::io::stdout().write_all(bytes)?),
    }
}

/// `breach report`: opens an incident as the local operator and writes its report in `format`.
pub fn report(
    guard: &Guard,
    req: &IncidentRequest,
    format: &str,
    out: Option<&Path>,
) -> Result<String> {
    let report = guard.breach_impact(Actor::Local("cli"), req, &RequestMeta::default())?;
    let bytes = match format {
        "json" => {
            let mut v = serde_json::to_vec_pretty(&report)?;
            v.push(b'\n');
            v
        }
        "csv" => report.to_csv()?,
        "markdown" | "md" => report.to_markdown().into_bytes(),
        other => bail!("unknown format {other:?}: json, csv or markdown"),
    };
    emit(out, &bytes)?;
    Ok(report.incident)
}

/// `breach notify`: the people to notify, as CSV, read as the account holding `token`.
pub fn notify(
    guard: &Guard,
    incident: &str,
    token: &str,
    scope: wbg_guard::NotifyScope,
    out: Option<&Path>,
) -> Result<usize> {
    let list = guard.notification_list(token, incident, scope, &RequestMeta::default())?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "name",
        "phone",
        "parties",
        "exposure",
        "fields",
        "waybills",
        "first_exposed",
    ])?;
    for n in &list.notices {
        w.write_record([
            n.name.as_str(),
            n.phone.as_str(),
            &n.parties.join(" "),
            n.exposure.as_str(),
            &n.fields.join(" "),
            &n.waybills.join(" "),
            &wbg_core::when::display(n.first_exposed),
        ])?;
    }
    emit(out, &w.into_inner()?)?;
    if list.withheld > 0 {
        eprintln!(
            "{} waybills of the incident were not opened to this account",
            list.withheld
        );
    }
    Ok(list.notices.len())
}

/// `breach close` / `breach reopen`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Change {
    /// The incident id (`INC-…`).
    #[arg(long)]
    incident: String,
    /// The reason code.
    #[arg(long)]
    reason: String,
    /// A note (kept sealed).
    #[arg(long)]
    note: Option<String>,
}

/// `breach close` / `breach reopen` (`open`): changes an incident's state as the local operator.
pub fn change(guard: &wbg_guard::Guard, c: Change, open: bool) -> Result<()> {
    let change = wbg_guard::IncidentStateChange {
        reason: c.reason,
        note: c.note,
    };
    let r = guard.change_incident(
        wbg_guard::Actor::Local("cli"),
        &c.incident,
        open,
        &change,
        &wbg_guard::RequestMeta::default(),
    )?;
    eprintln!("incident {} is {}", r.incident, r.state);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times() {
        let now = 1_000_000_000_000;
        assert_eq!(parse_time("123", now).unwrap(), 123);
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(parse_time("now-2h", now).unwrap(), now - 7_200_000);
        assert_eq!(parse_time("now-7d", now).unwrap(), now - 7 * 86_400_000);
        for bad in [
            "",
            "yesterday",
            "now-",
            "now-h",
            "now-3y",
            "now+1d",
            "2026-11-31",
        ] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
        // A date is midnight in China Standard Time.
        assert_eq!(
            parse_time("2026-11-23", now).unwrap(),
            parse_time("2026-11-22T16:00:00Z", now).unwrap()
        );
    }
}
