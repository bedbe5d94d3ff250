//! `wbguard demo`: a synthetic carrier in a temporary directory, walked through the guarded read path.
use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;
use std::time::Instant;
use wbg_core::{EventType, OutletId, Role, StatusEvent, View};
use wbg_guard::{
    verify_store, Actor, Guard, GuardConfig, GuardError, KeyConfig, ReadRequest, RequestMeta,
    RiskConfig, WaybillView,
};
use wbg_sim::{Carrier, CarrierSpec};
use wbg_store::AlertFilter;
use wbg_store_sqlite::SqliteStore;

const WAYBILLS: usize = 12_000;
const BATCH: usize = 2_000;

fn show(v: &WaybillView) -> String {
    match &v.recipient {
        None => format!(
            "view={} (routing only: status {}, {} → {})",
            v.view.as_str(),
            v.status.as_str(),
            v.origin_outlet,
            v.destination_outlet
        ),
        Some(r) => format!(
            "view={} recipient: {} {} {}{}{}{}",
            v.view.as_str(),
            r.name,
            r.phone,
            r.address.province,
            r.address.city,
            r.address.district,
            r.address
                .detail
                .as_deref()
                .map(|d| format!(" {d}"))
                .unwrap_or_default()
        ),
    }
}

fn outcome(r: &Result<WaybillView, GuardError>) -> String {
    match r {
        Ok(v) => show(v),
        Err(e) => format!("refused: {} ({})", e.code(), e),
    }
}

/// Runs the demo.
pub fn run(keep: Option<PathBuf>) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = keep.unwrap_or_else(|| tmp.path().to_owned());
    let (data, keys) = (root.join("data"), root.join("keys"));
    let started = Instant::now();
    println!("Waybill Guard demo");
    println!(
        "  data: {}   keys: {} (apart from the data)",
        data.display(),
        keys.display()
    );
    let cfg = GuardConfig {
        data: data.clone(),
        keys: KeyConfig::Dir(keys),
        policies: None,
        risk: RiskConfig::default(),
        create_keys: true,
    };
    let (guard, report) = Guard::open(cfg)?;
    crate::report_keys(&report);
    // Couriers call through virtual numbers from a pool (an example range; a carrier configures its own).
    let (guard, _) = guard.with_privacy_numbers(&wbg_guard::PrivacyNumbers {
        enabled: true,
        numbers: vec!["17100000000..17100000999".into()],
        ..Default::default()
    })?;
    let meta = RequestMeta::default();
    let local = Actor::Local("demo");

    // 1. A synthetic carrier.
    let carrier = Carrier::generate(CarrierSpec::default());
    let tokens = wbg_scenarios::enrol(&guard, &carrier, "demo")?;
    let token = |id: &str| {
        tokens
            .get(id)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("no account {id}"))
    };
    let integration = token("I001")?;
    let all = carrier.waybills(1, WAYBILLS);
    let t0 = Instant::now();
    for chunk in all.chunks(BATCH) {
        guard.ingest(Actor::Token(integration), chunk.to_vec(), &meta)?;
        guard.store().maintain()?;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "\n1. Synthetic carrier: {} outlets, {} accounts, {} waybills ingested encrypted ({:.0} waybills/s)",
        carrier.outlets.len(),
        carrier.accounts.len(),
        guard.store().waybill_count()?,
        WAYBILLS as f64 / secs
    );

    // 2. One parcel goes out for delivery with courier C of its destination outlet.
    let parcel = &all[0];
    let dest = &parcel.destination_outlet;
    let courier = carrier
        .account(Role::Courier, Some(dest))
        .ok_or_else(|| anyhow!("no courier"))?;
    let scans: [(EventType, &OutletId, Option<&str>); 4] = [
        (EventType::PickedUp, &parcel.origin_outlet, None),
        (EventType::InTransit, &parcel.origin_outlet, None),
        (EventType::AtOutlet, dest, None),
        (EventType::OutForDelivery, dest, Some(courier.id.as_str())),
    ];
    for (kind, outlet, c) in scans {
        let ev = StatusEvent {
            kind,
            outlet: outlet.clone(),
            courier: c.map(|c| c.parse()).transpose()?,
            at: None,
        };
        guard.record_event(
            Actor::Token(integration),
            parcel.waybill_no.as_str(),
            ev,
            &meta,
        )?;
    }
    println!(
        "\n2. Waybill {} ({} → {}) is out for delivery with courier {}",
        parcel.waybill_no, parcel.origin_outlet, dest, courier.id
    );
    let read = |who: &str, no: &str, purpose: &str| -> Result<Result<WaybillView, GuardError>> {
        Ok(guard.read(
            token(who)?,
            &ReadRequest {
                waybill_no: no,
                purpose,
                ticket: None,
            },
            &meta,
        ))
    };
    println!(
        "   courier {} reads it for delivery:        {}",
        courier.id,
        outcome(&read(&courier.id, parcel.waybill_no.as_str(), "delivery")?)
    );
    let elsewhere = all
        .iter()
        .find(|w| &w.destination_outlet != dest && &w.origin_outlet != dest)
        .ok_or_else(|| anyhow!("no waybill of another outlet"))?;
    let r = read(&courier.id, elsewhere.waybill_no.as_str(), "delivery")?;
    println!(
        "   courier {} reads {} of outlet {}:  {}",
        courier.id,
        elsewhere.waybill_no,
        elsewhere.destination_outlet,
        outcome(&r)
    );
    if r.is_ok() {
        bail!("a courier read another outlet's waybill");
    }
    let staff = carrier
        .account(Role::OutletStaff, Some(dest))
        .ok_or_else(|| anyhow!("no staff"))?;
    println!(
        "   outlet staff {} reads it:                {}",
        staff.id,
        outcome(&read(&staff.id, parcel.waybill_no.as_str(), "delivery")?)
    );
    let printer = carrier
        .account(Role::PrintStation, Some(&parcel.origin_outlet))
        .ok_or_else(|| anyhow!("no printer"))?;
    // A print job: the label carries the masked view and a QR token, never the data itself.
    let printed = guard.print_label(
        token(&printer.id)?,
        parcel.waybill_no.as_str(),
        wbg_guard::LabelFormat::Zpl,
        &meta,
    )?;
    let zpl = wbg_label::render(&printed.label, wbg_guard::LabelFormat::Zpl)?;
    let r = &parcel.recipient;
    let held = [r.name.as_str(), r.phone.as_str(), r.address.detail.as_str()];
    if held
        .iter()
        .any(|v| zpl.windows(v.len()).any(|w| w == v.as_bytes()))
    {
        bail!("a label holds personal data");
    }
    println!(
        "   print station {} prints the label:       ZPL, {} bytes: {} {}, QR {}… (no name, phone or street)",
        printer.id,
        zpl.len(),
        printed.label.recipient.name,
        printed.label.recipient.phone,
        &printed.label.token[..12]
    );
    println!(
        "   courier {} scans the label's QR code:    {}",
        courier.id,
        outcome(&guard.resolve_label(token(&courier.id)?, &printed.label.token, None, &meta))
    );
    // The courier's view held a virtual number; the telephony gateway connects the call.
    let (_, gateway) =
        guard.create_account(local, "TEL1", "telephony_gateway", None, None, &meta)?;
    let number = guard
        .read(
            token(&courier.id)?,
            &ReadRequest {
                waybill_no: parcel.waybill_no.as_str(),
                purpose: "delivery",
                ticket: None,
            },
            &meta,
        )?
        .privacy_number
        .ok_or_else(|| anyhow!("no privacy number was bound"))?;
    let route =
        |caller: &str| match guard.route_call(Actor::Token(&gateway), &number, caller, &meta) {
            Ok(r) if r.route_to == parcel.recipient.phone => {
                format!(
                    "connected to the recipient's real number (audit entry {})",
                    r.audit_seq
                )
            }
            Ok(_) => "connected to the wrong number".into(),
            Err(e) => format!("refused: {} ({})", e.code(), e),
        };
    println!(
        "   courier {} calls privacy number {}: {}",
        courier.id,
        number,
        route(courier.id.as_str())
    );
    let colleague = carrier
        .accounts
        .iter()
        .find(|a| {
            a.role == Role::Courier
                && a.outlet.as_deref() == Some(dest.as_str())
                && a.id != courier.id
        })
        .ok_or_else(|| anyhow!("no second courier"))?;
    println!(
        "   courier {} calls the same number:   {}",
        colleague.id,
        route(colleague.id.as_str())
    );
    println!(
        "   print station {} asks for delivery data: {}",
        printer.id,
        outcome(&read(&printer.id, parcel.waybill_no.as_str(), "delivery")?)
    );
    println!(
        "   auditor A001 looks it up:                {}",
        outcome(&read(
            "A001",
            parcel.waybill_no.as_str(),
            "breach_notification"
        )?)
    );

    // 3. A suspended account is refused.
    let other = colleague;
    guard.set_status(
        local,
        &other.id,
        true,
        Some("demo: device reported stolen"),
        &meta,
    )?;
    println!(
        "\n3. Courier {} is suspended; it tries again:   {}",
        other.id,
        outcome(&read(&other.id, parcel.waybill_no.as_str(), "delivery")?)
    );

    // 4. A scraper on a staff account is contained by the risk engine.
    let scraper = carrier
        .accounts
        .iter()
        .find(|a| {
            a.role == Role::OutletStaff
                && a.outlet.as_deref() == Some(dest.as_str())
                && a.id != staff.id
        })
        .unwrap_or(staff);
    let mine: Vec<&str> = all
        .iter()
        .filter(|w| &w.destination_outlet == dest)
        .map(|w| w.waybill_no.as_str())
        .collect();
    let (mut full, mut masked, mut refused) = (0, 0, 0);
    for no in &mine {
        match read(&scraper.id, no, "exception_handling")? {
            Ok(v) if v.view == View::Full => full += 1,
            Ok(_) => masked += 1,
            Err(GuardError::RateLimited(_) | GuardError::AccountSuspended) => refused += 1,
            Err(e) => return Err(e.into()),
        }
    }
    let mut alerts = guard.store().alerts(&AlertFilter {
        account: Some(scraper.id.clone()),
        limit: 10,
        ..Default::default()
    })?;
    alerts.sort_by_key(|a| a.id);
    println!(
        "\n4. Staff account {} pulls {} records of its outlet at machine speed: {full} in full, {masked} masked, \
         {refused} refused; the risk engine raised {} alert(s):",
        scraper.id,
        mine.len(),
        alerts.len(),
    );
    for a in &alerts {
        println!("     {} ({}): {}", a.kind, a.severity, explain(&a.detail));
    }

    // 5. The audit log verifies against its signed checkpoint.
    let note = guard.checkpoint()?;
    let verifier = guard.verifier_key();
    let report = verify_store(guard.store().as_ref(), &verifier)
        .map_err(|f| anyhow!("audit log does not verify: {f}"))?;
    println!("\n5. Audit log: {} entries, every read and denial above among them; verifies against the signed checkpoint:", report.entries);
    for line in note.lines() {
        println!("     {line}");
    }

    // 6. One flipped byte in the store file is caught and named.
    let target = report.entries / 2;
    drop(guard);
    let flipped = flip_byte_of_entry(&data, target)?;
    let store = SqliteStore::open(&data)?;
    match verify_store(&store, &verifier) {
        Ok(_) => bail!("a flipped byte in entry {target} went unnoticed"),
        Err(f) => println!("\n6. Flipped one byte ({flipped}) inside audit entry {target} in {}:\n   audit verify: {f}", store.db_path().display()),
    }

    // 7. T1-T4 replayed inside a week of a small carrier's ordinary work, in a store of their own.
    println!(
        "\n7. T1-T4 replayed: every built-in attack variant inside a week of a small carrier's ordinary work, \
         through a fresh guard (`wbguard simulate` runs the full-size carrier):"
    );
    let spec = wbg_scenarios::SimSpec::small(1);
    let mut world = wbg_scenarios::World::scratch(&root.join("simulation"), &spec)?;
    let (reports, outcomes) = wbg_scenarios::simulate(
        &mut world,
        &spec,
        &wbg_scenarios::builtin(),
        &wbg_scenarios::scenarios("all")?,
    )?;
    for line in wbg_scenarios::render_table(&reports).lines() {
        println!("   {line}");
    }
    attributed(&world, &outcomes, &root.join("leaks"))?;
    println!("\nDone in {:.1}s.", started.elapsed().as_secs_f64());
    Ok(())
}

/// Flips one byte of the account id inside entry `seq`, directly in the database file, as a tamperer with file
/// access would. Returns a description of the change.
fn flip_byte_of_entry(data: &std::path::Path, seq: u64) -> Result<String> {
    SqliteStore::open(data)?.checkpoint_wal()?;
    let path = data.join(wbg_store_sqlite::DB_FILE);
    let mut bytes =
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let needle = format!("{{\"seq\":{seq},\"time\":");
    let at = find(&bytes, needle.as_bytes())
        .ok_or_else(|| anyhow!("entry {seq} not found in the file"))?;
    let acct = find(&bytes[at..], b"\"account\":\"")
        .ok_or_else(|| anyhow!("entry {seq} has no account"))?
        + at
        + 11;
    let before = bytes[acct] as char;
    bytes[acct] ^= 0x01;
    let after = bytes[acct] as char;
    std::fs::write(&path, &bytes)?;
    Ok(format!(
        "account id starting '{before}' now starts '{after}'"
    ))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One line from an engine alert's JSON explanation: the scores and the detectors that fired.
fn explain(detail: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(detail) else {
        return detail.to_owned();
    };
    let mut detectors: Vec<&str> = v["signals"]
        .as_array()
        .map(|s| s.iter().filter_map(|x| x["detector"].as_str()).collect())
        .unwrap_or_default();
    detectors.dedup();
    format!(
        "burst score {}, drift score {}; signals from {}",
        v["burst_score"],
        v["drift_score"],
        detectors.join(", ")
    )
}

/// Step 8: each attacker's take, as it would turn up for sale, attributed back to its account; then the
/// incident's impact for the attackers together.
fn attributed(
    world: &wbg_scenarios::World,
    outcomes: &[wbg_scenarios::AttackOutcome],
    leaks: &std::path::Path,
) -> Result<()> {
    wbg_scenarios::write_leaks(world, outcomes, leaks)?;
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(leaks.join("ground_truth.json"))?)?;
    let guard = world.guard();
    let (meta, local) = (RequestMeta::default(), Actor::Local("demo"));
    println!(
        "\n8. Attributed: each attacker's take (what it got in full; a label-printer trojan's masked labels when that \
         is all it had) matched through the blind indexes and ranked from the access index:"
    );
    let (mut right, mut tried) = (0, 0);
    let mut attackers = Vec::new();
    for t in truth.as_array().into_iter().flatten() {
        let (Some(attack), Some(account)) = (t["attack"].as_str(), t["accounts"][0].as_str())
        else {
            continue;
        };
        let (full, served) = (
            t["records"].as_u64().unwrap_or(0),
            t["served_records"].as_u64().unwrap_or(0),
        );
        let file = match (full, served) {
            (0, 0) => continue,
            (0, _) => t["served_file"].as_str(),
            _ => t["file"].as_str(),
        };
        let Some(file) = file else { continue };
        let leak = std::fs::File::open(leaks.join(file))?;
        let a = guard.attribute(local, leak, &wbg_forensics::Limits::default(), &meta)?;
        let Some(top) = a.suspects.first() else {
            continue;
        };
        tried += 1;
        let hit = top.principal == account;
        right += usize::from(hit);
        if !attackers.iter().any(|x| x == account) {
            attackers.push(account.to_owned());
        }
        println!(
            "   {attack:26} {:5} rows → rank {}: {:9} coverage {:3.0}%  posterior {:.3}  {}",
            a.rows,
            top.rank,
            top.principal,
            top.coverage * 100.0,
            top.posterior,
            if hit {
                "= the attacker"
            } else {
                "(the attacker was another)"
            }
        );
    }
    println!("   {right} of {tried} leaks name their attacker at rank 1.");
    if attackers.is_empty() {
        return Ok(());
    }
    // The simulated weeks, well inside the widest window an incident may cover ([incidents] max_window_days).
    let now = world.now();
    let report = guard.breach_impact(
        local,
        &wbg_guard::IncidentRequest {
            suspects: attackers,
            from: now - 60 * 86_400_000,
            to: now + 1,
        },
        &meta,
    )?;
    let regions: Vec<String> = report
        .by_region
        .iter()
        .take(3)
        .map(|r| format!("{}{} {}", r.province, r.city, r.customers))
        .collect();
    println!(
        "   Incident {}: {} customers exposed ({} in full) on {} waybills; most in {}. \
         `wbguard breach report` writes it as JSON, CSV or Markdown.",
        report.incident,
        report.customers,
        report.customers_full,
        report.waybills,
        regions.join(", ")
    );
    Ok(())
}
