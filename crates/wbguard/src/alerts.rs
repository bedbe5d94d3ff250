//! `wbguard alerts [--follow]`: the alert queue in a terminal — from the local store as its operator, or from a
//! running node (`--url`) as an auditor or admin, whose live queue is the node's Server-Sent Events stream.
use anyhow::{bail, Context, Result};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use wbg_core::Alert;
use wbg_guard::{Actor, RequestMeta};
use wbg_store::AlertFilter;

/// The command's arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only alerts in this triage state (new, investigating, confirmed, false_positive).
    #[arg(long)]
    state: Option<String>,
    /// Only this account's alerts.
    #[arg(long)]
    account: Option<String>,
    /// How many of the newest to show (oldest of them first).
    #[arg(long, default_value_t = 20)]
    last: usize,
    /// Keep watching: print each new alert as it is raised, until interrupted.
    #[arg(long)]
    follow: bool,
    /// One JSON object per line instead of columns.
    #[arg(long)]
    json: bool,
    /// Ask a running node instead of the local store: its base URL, e.g. `https://guard.example:8443` (the
    /// account's token from --token-file or $WBGUARD_TOKEN: an auditor's or an admin's).
    #[arg(long)]
    url: Option<String>,
    /// A file holding the account's API token (with --url; else $WBGUARD_TOKEN).
    #[arg(long)]
    token_file: Option<PathBuf>,
}

/// One alert as a line: time (UTC), id, severity, state, account, kind, the audit entries behind it.
fn line(a: &Alert, json: bool) -> Result<String> {
    if json {
        return Ok(serde_json::to_string(a)?);
    }
    let seqs = match a.audit_seqs.as_slice() {
        [] => "-".to_owned(),
        [one] => one.to_string(),
        [first, .., last] => format!("{first}…{last} ({})", a.audit_seqs.len()),
    };
    Ok(format!(
        "{}Z  #{:<6} {:<8} {:<14} {:<12} {:<16} audit {seqs}",
        wbg_core::when::display(a.at),
        a.id,
        a.severity,
        a.state,
        a.account,
        a.kind,
    ))
}

fn wanted(args: &Args, a: &Alert) -> bool {
    args.state.as_deref().is_none_or(|s| a.state == s)
        && args.account.as_deref().is_none_or(|x| a.account == x)
}

/// Prints the newest alerts, then (with `--follow`) every new one.
pub fn run(args: &Args, cfg: &crate::Config) -> Result<()> {
    match &args.url {
        Some(url) => remote(args, url.trim_end_matches('/')),
        None => local(args, cfg),
    }
}

fn print(out: &mut impl Write, a: &Alert, args: &Args) -> Result<()> {
    if wanted(args, a) {
        writeln!(out, "{}", line(a, args.json)?)?;
        out.flush()?;
    }
    Ok(())
}

fn local(args: &Args, cfg: &crate::Config) -> Result<()> {
    let guard = crate::open_guard(cfg)?;
    let (actor, meta) = (Actor::Local("cli"), RequestMeta::default());
    let filter = AlertFilter {
        account: args.account.clone(),
        state: args.state.clone(),
        limit: args.last.max(1),
        ..AlertFilter::default()
    };
    let mut shown = guard.alerts(actor, &filter, &meta)?;
    shown.reverse();
    let out = &mut std::io::stdout().lock();
    for a in &shown {
        print(out, a, args)?;
    }
    if !args.follow {
        return Ok(());
    }
    let mut last = guard.newest_alert_id()?;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(250));
        for a in guard.alerts_after(actor, last, 100, &meta)? {
            last = a.id;
            print(out, &a, args)?;
        }
    }
}

fn remote(args: &Args, url: &str) -> Result<()> {
    let token = crate::api_token(args.token_file.as_deref())?;
    let client = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .context("cannot make an HTTP client")?;
    let mut query = vec![("limit", args.last.max(1).to_string())];
    if let Some(s) = &args.state {
        query.push(("state", s.clone()));
    }
    if let Some(a) = &args.account {
        query.push(("account", a.clone()));
    }
    let get = |path: &str, query: &[(&str, String)]| -> Result<reqwest::blocking::Response> {
        let r = client
            .get(format!("{url}{path}"))
            .bearer_auth(&token)
            .query(query)
            .send()
            .with_context(|| format!("cannot reach {url}"))?;
        if !r.status().is_success() {
            bail!(
                "{url} answered {}: {}",
                r.status(),
                r.text().unwrap_or_default()
            );
        }
        Ok(r)
    };
    let mut shown: Vec<Alert> = get("/v1/alerts", &query)?
        .json()
        .context("the alert list does not parse")?;
    shown.reverse();
    let out = &mut std::io::stdout().lock();
    for a in &shown {
        print(out, a, args)?;
    }
    if !args.follow {
        return Ok(());
    }
    let r = get("/v1/alerts/stream", &[])?;
    // Server-Sent Events: `event:` and `data:` lines, an empty line ends an event.
    let (mut event, mut data) = (String::new(), String::new());
    for l in std::io::BufReader::new(r).lines() {
        let l = l.context("the alert stream broke off")?;
        if let Some(v) = l.strip_prefix("event:") {
            event = v.trim().to_owned();
        } else if let Some(v) = l.strip_prefix("data:") {
            data.push_str(v.trim_start());
        } else if l.is_empty() {
            match event.as_str() {
                "alert" => {
                    let a: Alert =
                        serde_json::from_str(&data).context("an alert does not parse")?;
                    print(out, &a, args)?;
                }
                "end" => bail!("the node ended the stream: {data}"),
                _ => {}
            }
            event.clear();
            data.clear();
        }
    }
    bail!("the node closed the alert stream")
}
