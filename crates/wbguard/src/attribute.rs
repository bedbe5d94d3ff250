//! `wbguard attribute`: a leaked sample in, ranked suspects out (a table, or the whole report as JSON).
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use wbg_forensics::Limits;
use wbg_guard::{Actor, Attribution, Guard, RequestMeta};

/// Brings the access index up to date (with a progress bar when there is much to read), then attributes the
/// leak at `path` as the local operator.
pub fn run(guard: &Guard, path: &Path, max_mib: u64) -> Result<Attribution> {
    let limits = Limits {
        max_bytes: max_mib.saturating_mul(1 << 20),
        ..Limits::default()
    };
    let file = wbg_forensics::open_leak(path, &limits)
        .with_context(|| format!("cannot take {} as a leak", path.display()))?;
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template(
            "indexing the audit log {bar:40} {pos}/{len} entries  eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    guard.index_accesses(None, &mut |done, total| {
        if total > 200_000 && bar.is_hidden() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_length(total);
        }
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    let report = guard
        .attribute(Actor::Local("cli"), file, &limits, &RequestMeta::default())
        .with_context(|| format!("cannot attribute {}", path.display()))?;
    Ok(report)
}

fn when(ms: i64) -> String {
    let t = wbg_core::utc_text(ms);
    format!("{}Z", &t[..16])
}

/// The report as a table for a person.
pub fn render(r: &Attribution) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "leak: {} rows ({}), {} matched to waybills, {} matched nothing; {} principals were shown matched records",
        r.rows,
        match r.format {
            wbg_forensics::Format::Csv => "CSV",
            wbg_forensics::Format::JsonLines => "JSON Lines",
        },
        r.matched,
        r.unmatched,
        r.principals_considered
    );
    let _ = writeln!(
        out,
        "\n{:>4}  {:10} {:15} {:>8} {:>9} {:>9} {:>10} {:>9}  {:17} {:17} {:>6}",
        "rank",
        "principal",
        "role",
        "covered",
        "coverage",
        "exclusive",
        "score",
        "posterior",
        "first access",
        "last access",
        "alerts"
    );
    for s in &r.suspects {
        let _ = writeln!(
            out,
            "{:>4}  {:10} {:15} {:>8} {:>8.0}% {:>9} {:>7.0} b {:>9.3}  {:17} {:17} {:>6}{}",
            s.rank,
            s.principal,
            s.role.as_deref().unwrap_or("-"),
            s.covered,
            s.coverage * 100.0,
            s.exclusive,
            s.score_bits,
            s.posterior,
            when(s.first_access),
            when(s.last_access),
            s.alerts.map_or("-".into(), |a| a.to_string()),
            if s.certain { "  CERTAIN (canary)" } else { "" }
        );
    }
    if let Some(p) = &r.top_pair {
        let _ = writeln!(
            out,
            "\ntop pair: {} + {} cover {:.0}% ({:+.0} bits over the better alone){}",
            p.principals[0],
            p.principals[1],
            p.coverage * 100.0,
            p.gain_bits,
            if p.explains_better {
                ": together they explain the leak better than either; investigate as colluders"
            } else {
                ""
            }
        );
    }
    if let Some(s) = r.suspects.first() {
        let _ = writeln!(
            out,
            "\nevidence for {} (audit entries, with inclusion proofs in the checkpoint of size {} in --json):",
            s.principal, r.checkpoint_size
        );
        for e in s.evidence.iter().take(5) {
            let _ = writeln!(
                out,
                "  #{:<10} {} {:6} {}",
                e.seq,
                when(e.at),
                e.view,
                e.waybill
            );
        }
    }
    let _ = writeln!(out, "\nthis attribution is audit entry #{}", r.audit_seq);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil() {
        assert_eq!(super::when(0), "1970-01-01 00:00Z");
        assert_eq!(super::when(1_795_000_000_000), "2026-11-18 11:06Z");
    }
}
