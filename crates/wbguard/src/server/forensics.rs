//! Oversight over HTTP: alerts, leak attribution, breach incidents and their notification lists, canaries.
use super::error::{ApiError, ApiErrorBody, ApiResult};
use super::extract::{Body, Caller, RawBody, Q};
use super::{AppState, MAX_BODY};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wbg_core::Alert;
use wbg_guard::{
    AlertDetail, AlertExplanation, Attribution, Backtest, Case, CaseChange, HoldRelease,
    HoldRequest, HoldSummary, ImpactReport, IncidentRequest, IncidentStateChange, IncidentSummary,
    LegalHold, NewCase, NotificationList, NotifyScope, SuppressedAlerts, Suppression,
    SuppressionRequest, TriageRequest,
};
use wbg_store::AlertFilter;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AlertQuery {
    /// Only this account's alerts.
    #[serde(default)]
    account: Option<String>,
    /// Only this kind (e.g. `rate_limit`).
    #[serde(default)]
    kind: Option<String>,
    /// Only alerts in this triage state (`new`, `investigating`, `confirmed`, `false_positive`).
    #[serde(default)]
    state: Option<String>,
    /// Only alerts at or after this time: ms since the epoch, ISO 8601, a date, `now-1d`…
    #[serde(default)]
    since: Option<String>,
    /// At most this many (default 100, max 10,000), newest first.
    #[serde(default)]
    limit: Option<usize>,
    /// Alerts a suppression hides: `hide` (the default: the queue), `include`, or `only`.
    #[serde(default)]
    suppressed: Option<String>,
}

#[utoipa::path(get, path = "/v1/alerts", tag = "oversight", summary = "Alerts, newest first (auditors, admins)",
    security(("bearer" = [])), params(AlertQuery),
    responses((status = 200, body = [Alert]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody)))]
pub(super) async fn alerts(caller: Caller, Q(q): Q<AlertQuery>) -> ApiResult<Json<Vec<Alert>>> {
    let filter = AlertFilter {
        account: q.account,
        kind: q.kind,
        state: q.state,
        since: super::audit::when("since", q.since.as_deref())?,
        limit: q.limit.unwrap_or(100),
    };
    let which = match q.suppressed.as_deref() {
        None | Some("hide") => SuppressedAlerts::Hide,
        Some("include") => SuppressedAlerts::Include,
        Some("only") => SuppressedAlerts::Only,
        Some(_) => {
            return Err(ApiError::invalid(
                "suppressed must be hide, include or only",
            ))
        }
    };
    caller
        .run(move |g, c| g.alerts_with(c.actor(), &filter, which, &c.meta))
        .await
        .map(Json)
}

/// An alert id from the path.
fn alert_id(segment: &str) -> ApiResult<i64> {
    segment
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::invalid("alert id must be a positive number"))
}

#[utoipa::path(get, path = "/v1/alerts/{id}", tag = "oversight", summary = "An alert with its audit seqs and triage history (auditors, admins)",
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = AlertDetail), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn alert(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<AlertDetail>> {
    let id = alert_id(&id)?;
    caller
        .run(move |g, c| g.alert(c.actor(), id, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(get, path = "/v1/alerts/{id}/explanation", tag = "oversight",
    summary = "Why an alert was raised: its signals and scores, the account's entitlement per purpose, and each read behind it with the waybill's outlets, courier and status (auditors, admins)",
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = AlertExplanation), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn explain(
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AlertExplanation>> {
    let id = alert_id(&id)?;
    caller
        .run(move |g, c| g.explain_alert(c.actor(), id, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/suppressions/backtest", tag = "oversight",
    summary = "What a suppression would have hidden over the last 30 days, and how many of those alerts were later confirmed (auditors)",
    security(("bearer" = [])), request_body = SuppressionRequest,
    responses((status = 200, body = Backtest), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody)))]
pub(super) async fn backtest_suppression(
    caller: Caller,
    Body(req): Body<SuppressionRequest>,
) -> ApiResult<Json<Backtest>> {
    caller
        .run(move |g, c| g.backtest_suppression(c.actor(), &req, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/suppressions", tag = "oversight",
    summary = "Hide a detector's alerts for an account, outlet or role from the queue, backtested first (auditors)",
    description = "Refused with 409 when the 30-day backtest finds confirmed alerts among those it would have hidden, unless \
        accept_confirmed is set. Reasons: legitimate_work, known_noise, test_activity, duplicate_source. It hides alerts raised \
        while it is in force; it never stops the engine from refusing, capping or suspending.",
    security(("bearer" = [])), request_body = SuppressionRequest,
    responses((status = 201, body = Suppression), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub(super) async fn suppress(
    caller: Caller,
    Body(req): Body<SuppressionRequest>,
) -> ApiResult<(StatusCode, Json<Suppression>)> {
    caller
        .run(move |g, c| g.suppress(c.actor(), &req, &c.meta))
        .await
        .map(|s| (StatusCode::CREATED, Json(s)))
}

#[utoipa::path(get, path = "/v1/suppressions", tag = "oversight", summary = "Every suppression, newest first (auditors, admins)",
    security(("bearer" = [])),
    responses((status = 200, body = [Suppression]), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody)))]
pub(super) async fn suppressions(caller: Caller) -> ApiResult<Json<Vec<Suppression>>> {
    caller
        .run(move |g, c| g.suppressions(c.actor(), &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/suppressions/{id}/lift", tag = "oversight", summary = "End a suppression now (auditors)",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Suppression), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub(super) async fn lift_suppression(
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Suppression>> {
    caller
        .run(move |g, c| g.lift_suppression(c.actor(), &id, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/cases", tag = "oversight",
    summary = "Open a case grouping alerts, accounts and incidents, with the default checklist (auditors)",
    security(("bearer" = [])), request_body = NewCase,
    responses((status = 201, body = Case), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody)))]
pub(super) async fn open_case(
    caller: Caller,
    Body(req): Body<NewCase>,
) -> ApiResult<(StatusCode, Json<Case>)> {
    caller
        .run(move |g, c| g.open_case(c.actor(), &req, &c.meta))
        .await
        .map(|case| (StatusCode::CREATED, Json(case)))
}

#[utoipa::path(get, path = "/v1/cases", tag = "oversight", summary = "Every case, most recently changed first (auditors, admins)",
    security(("bearer" = [])),
    responses((status = 200, body = [Case]), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody)))]
pub(super) async fn cases(caller: Caller) -> ApiResult<Json<Vec<Case>>> {
    caller
        .run(move |g, c| g.cases(c.actor(), &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(get, path = "/v1/cases/{id}", tag = "oversight", summary = "A case (auditors, admins)",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Case), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn case(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Case>> {
    caller
        .run(move |g, c| g.case(c.actor(), &id, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/cases/{id}/changes", tag = "oversight",
    summary = "Change a case: add alerts, accounts, incidents, evidence, checklist items; tick; close with a finding; reopen (auditors)",
    description = "All parts or none; a compare-and-set on `revision` (409 when the case changed since). Findings: confirmed_leak, \
        policy_violation, no_wrongdoing, inconclusive.",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = CaseChange,
    responses((status = 200, body = Case), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub(super) async fn change_case(
    caller: Caller,
    Path(id): Path<String>,
    Body(ch): Body<CaseChange>,
) -> ApiResult<Json<Case>> {
    caller
        .run(move |g, c| g.change_case(c.actor(), &id, &ch, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(get, path = "/v1/cases/{id}/evidence-pack", tag = "oversight",
    summary = "A case's evidence pack: its locker's entries and those behind its alerts, with proofs to a checkpoint signed now (auditors, admins)",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "a wbguard-evidence-pack/1 JSON document", content_type = "application/json"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody)))]
pub(super) async fn case_evidence_pack(
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let name = format!("case-{id}-evidence.json");
    let pack = caller
        .run(move |g, c| g.case_evidence_pack(c.actor(), &id, &c.meta))
        .await?;
    attachment(&name, pack)
}

/// `body` as a JSON download named `name` (a name made of checked ids).
fn attachment<T: Serialize>(name: &str, body: T) -> ApiResult<Response> {
    let disposition =
        axum::http::HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
            .map_err(|_| ApiError::invalid("the id cannot name a file"))?;
    Ok(([(header::CONTENT_DISPOSITION, disposition)], Json(body)).into_response())
}

#[utoipa::path(get, path = "/v1/alerts/{id}/evidence-pack", tag = "oversight",
    summary = "The audit entries behind an alert with inclusion proofs up to a checkpoint signed now, and the verifier key: checked offline by `wbguard audit verify-pack` (auditors, admins)",
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, description = "a wbguard-evidence-pack/1 JSON document", content_type = "application/json"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody)))]
pub(super) async fn evidence_pack(caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let id = alert_id(&id)?;
    let pack = caller
        .run(move |g, c| g.evidence_pack(c.actor(), id, &c.meta))
        .await?;
    attachment(&format!("alert-{id}-evidence.json"), pack)
}

#[utoipa::path(post, path = "/v1/alerts/{id}/triage", tag = "oversight",
    summary = "Triage an alert: state, reason code, assignee, note (auditors); every change audited",
    description = "Reason codes by target state: new ← reopened; investigating ← needs_investigation, reassigned; \
        confirmed ← confirmed_leak, policy_violation; false_positive ← legitimate_work, misattributed, duplicate, \
        test_activity. A change that keeps the state may also give reassigned or note. Give the alert's revision to \
        make the change only if nobody triaged it meanwhile (409 otherwise).",
    security(("bearer" = [])), params(("id" = i64, Path)), request_body = TriageRequest,
    responses((status = 200, body = AlertDetail), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub(super) async fn triage(
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<TriageRequest>,
) -> ApiResult<Json<AlertDetail>> {
    let id = alert_id(&id)?;
    caller
        .run(move |g, c| g.triage_alert(c.actor(), id, &req, &c.meta))
        .await
        .map(Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct StreamQuery {
    /// Send alerts with ids above this one first (default: only alerts raised from now on; a reconnecting
    /// client's `Last-Event-ID` header takes precedence).
    #[serde(default)]
    after: Option<i64>,
}

/// How often a live queue looks for new alerts.
const STREAM_POLL: std::time::Duration = std::time::Duration::from_millis(250);

#[utoipa::path(get, path = "/v1/alerts/stream", tag = "oversight",
    summary = "New alerts as Server-Sent Events, within a second of being raised (auditors, admins)",
    description = "Each event is `event: alert`, `id: <alert id>`, data the alert as JSON. The stream ends with \
        `event: end` when the credential stops working (revoked, expired, the account suspended).",
    security(("bearer" = [])), params(StreamQuery),
    responses((status = 200, description = "text/event-stream of alerts", content_type = "text/event-stream"),
        (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody)))]
pub(super) async fn alert_stream(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Q(q): Q<StreamQuery>,
) -> ApiResult<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let guard = caller.shared_guard();
    let (token, meta) = (caller.token.clone(), caller.meta.clone());
    // A console session's stream ends when the session does (signed out, lapsed), not only with the credential.
    let session = caller.session.clone();
    // The caller is checked before the stream starts, so a refusal is the API's usual JSON error.
    let start = caller
        .run(move |g, c| {
            g.alerts_after(c.actor(), i64::MAX, 1, &c.meta)?;
            match resume.or(q.after) {
                Some(n) => Ok(n.max(0)),
                None => g.newest_alert_id(),
            }
        })
        .await?;
    let state = (guard, start, false);
    let stream = futures_util::stream::unfold(state, move |(guard, last, ended)| {
        let (token, meta, session) = (token.clone(), meta.clone(), session.clone());
        async move {
            if ended {
                return None;
            }
            loop {
                tokio::time::sleep(STREAM_POLL).await;
                let g = guard.clone();
                let (t, m) = (token.clone(), meta.clone());
                let polled = if session.as_ref().is_some_and(|s| !s.open()) {
                    Ok(Err(wbg_guard::GuardError::Unauthenticated))
                } else {
                    tokio::task::spawn_blocking(move || {
                        g.alerts_after(wbg_guard::Actor::Token(&t), last, 100, &m)
                    })
                    .await
                };
                match polled {
                    Ok(Ok(alerts)) if alerts.is_empty() => continue,
                    Ok(Ok(alerts)) => {
                        let next = alerts.last().map_or(last, |a| a.id);
                        let events: Vec<Result<Event, std::convert::Infallible>> = alerts
                            .iter()
                            .map(|a| {
                                Ok(Event::default()
                                    .event("alert")
                                    .id(a.id.to_string())
                                    .json_data(a)
                                    .unwrap_or_else(|_| Event::default().event("alert").data("{}")))
                            })
                            .collect();
                        return Some((futures_util::stream::iter(events), (guard, next, false)));
                    }
                    _ => {
                        let end = vec![Ok(Event::default()
                            .event("end")
                            .data("credential no longer valid"))];
                        return Some((futures_util::stream::iter(end), (guard, last, true)));
                    }
                }
            }
        }
    })
    .flatten();
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(app.stream_keep_alive)))
}

#[utoipa::path(post, path = "/v1/forensics/attributions", tag = "forensics", summary = "Attribute a leaked sample to the accounts that could have produced it",
    security(("bearer" = [])),
    request_body(content = String, description = "The leaked sample as it was found: CSV (English or Chinese headers, or none; comma, tab, semicolon or bar separated) or JSON Lines, UTF-8, at most 16 MiB.", content_type = "text/csv"),
    responses((status = 200, body = Attribution, description = "Ranked suspects with evidence and inclusion proofs; never a name, phone or address"),
        (status = 400, body = ApiErrorBody, description = "Not a leak: empty, binary, no usable column"), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody, description = "Only auditors investigate"),
        (status = 413, body = ApiErrorBody)))]
pub(super) async fn attribute(
    caller: Caller,
    RawBody(body): RawBody,
) -> ApiResult<Json<Attribution>> {
    let limits = wbg_forensics::Limits {
        max_bytes: MAX_BODY as u64,
        ..wbg_forensics::Limits::default()
    };
    caller
        .run(move |g, c| g.attribute(c.actor(), body.as_ref(), &limits, &c.meta))
        .await
        .map(Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ReportQuery {
    /// `json` (the default), `csv` (the affected waybills, no persons) or `markdown` (a readable document).
    #[serde(default)]
    format: Option<String>,
}

/// An impact report in the format asked for.
fn report_response(report: ImpactReport, format: Option<&str>) -> ApiResult<Response> {
    Ok(match format.unwrap_or("json") {
        "json" => Json(report).into_response(),
        "csv" => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            report.to_csv()?,
        )
            .into_response(),
        "markdown" | "md" => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            report.to_markdown(),
        )
            .into_response(),
        _ => return Err(ApiError::invalid("format must be json, csv or markdown")),
    })
}

#[utoipa::path(post, path = "/v1/forensics/incidents", tag = "forensics", summary = "Open a breach incident: who was exposed, which fields, where",
    security(("bearer" = [])), request_body = IncidentRequest,
    responses((status = 201, body = ImpactReport, description = "The breach-impact report; it names waybills, accounts, regions and counts, never a person"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody, description = "Only auditors investigate"),
        (status = 413, body = ApiErrorBody, description = "More exposed waybills than one incident holds: split the window")))]
pub(super) async fn open_incident(
    caller: Caller,
    Body(req): Body<IncidentRequest>,
) -> ApiResult<(StatusCode, Json<ImpactReport>)> {
    let report = caller
        .run(move |g, c| g.breach_impact(c.actor(), &req, &c.meta))
        .await?;
    Ok((StatusCode::CREATED, Json(report)))
}

#[utoipa::path(get, path = "/v1/forensics/incidents", tag = "forensics", summary = "Every incident in brief, newest first (auditors)",
    security(("bearer" = [])),
    responses((status = 200, body = [IncidentSummary]), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody)))]
pub(super) async fn incidents(caller: Caller) -> ApiResult<Json<Vec<IncidentSummary>>> {
    caller
        .run(|g, c| g.incidents(c.actor(), &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/forensics/incidents/{id}/close", tag = "forensics",
    summary = "Close an incident with a reason code: notified, no_exposure, duplicate, referred_to_police (auditors; audited)",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = IncidentStateChange,
    responses((status = 200, body = ImpactReport), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody, description = "Closed already")))]
pub(super) async fn close_incident(
    caller: Caller,
    Path(id): Path<String>,
    Body(change): Body<IncidentStateChange>,
) -> ApiResult<Json<ImpactReport>> {
    caller
        .run(move |g, c| g.change_incident(c.actor(), &id, false, &change, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/forensics/incidents/{id}/reopen", tag = "forensics",
    summary = "Reopen a closed incident with a reason code: new_evidence, reopened (auditors; audited)",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = IncidentStateChange,
    responses((status = 200, body = ImpactReport), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody, description = "Open already")))]
pub(super) async fn reopen_incident(
    caller: Caller,
    Path(id): Path<String>,
    Body(change): Body<IncidentStateChange>,
) -> ApiResult<Json<ImpactReport>> {
    caller
        .run(move |g, c| g.change_incident(c.actor(), &id, true, &change, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(get, path = "/v1/forensics/incidents/{id}", tag = "forensics", summary = "An incident's impact report",
    security(("bearer" = [])), params(("id" = String, Path), ReportQuery),
    responses((status = 200, body = ImpactReport, description = "JSON, or CSV / Markdown as asked"), (status = 400, body = ApiErrorBody),
        (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn incident(
    caller: Caller,
    Path(id): Path<String>,
    Q(q): Q<ReportQuery>,
) -> ApiResult<Response> {
    let report = caller
        .run(move |g, c| g.incident(c.actor(), &id, &c.meta))
        .await?;
    report_response(report, q.format.as_deref())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct NotifyQuery {
    /// `beyond_work` (the default: the people on waybills the suspects were shown beyond their registered work)
    /// or `all` (their own work's too).
    #[serde(default)]
    scope: Option<String>,
    /// `json` (the default: the list, each notice with its text message filled in), `markdown` (each person's
    /// letter, filled in, one after another) or `pdf` (the same, a letter a page).
    #[serde(default)]
    format: Option<String>,
    /// The letters' language: `zh` (the default) or `en`.
    #[serde(default)]
    lang: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct LangQuery {
    /// `zh` (the default) or `en`.
    #[serde(default)]
    lang: Option<String>,
    /// `markdown` (the default; plain text for the SMS) or `pdf` (A4; the Chinese set in `STSong-Light`, which
    /// every PDF reader supplies, with a ToUnicode map so the text copies and extracts).
    #[serde(default)]
    format: Option<String>,
}

#[utoipa::path(get, path = "/v1/forensics/incidents/{id}/reports/{kind}", tag = "forensics",
    summary = "A report the incident owes: sms or letter to each person (PIPL art. 57), regulator (cyberspace administration), postal (Express Delivery Interim Regulations art. 34) or police (auditors)",
    security(("bearer" = [])), params(("id" = String, Path), ("kind" = String, Path), LangQuery),
    responses((status = 200, description = "Markdown (the text message as plain text), or PDF with format=pdf; no person named", content_type = "text/markdown"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody)))]
pub(super) async fn owed_report(
    caller: Caller,
    Path((id, kind)): Path<(String, String)>,
    Q(q): Q<LangQuery>,
) -> ApiResult<Response> {
    let kind = wbg_guard::ReportKind::parse(&kind).ok_or_else(|| {
        ApiError::invalid("kind must be sms, letter, regulator, postal or police")
    })?;
    let lang = match q.lang.as_deref() {
        None | Some("zh") => wbg_guard::Lang::Zh,
        Some("en") => wbg_guard::Lang::En,
        Some(_) => return Err(ApiError::invalid("lang must be zh or en")),
    };
    let pdf = match q.format.as_deref() {
        None | Some("markdown") => false,
        Some("pdf") => true,
        Some(_) => return Err(ApiError::invalid("format must be markdown or pdf")),
    };
    let title = format!("{id} {}", q.lang.as_deref().unwrap_or("zh"));
    let text = caller
        .run(move |g, c| {
            let r = g.incident(c.actor(), &id, &c.meta)?;
            Ok(r.owed_report(kind, lang, g.incident_contact()))
        })
        .await?;
    if pdf {
        let bytes = wbg_label::document_pdf(&title, &text);
        return Ok(([(header::CONTENT_TYPE, "application/pdf")], bytes).into_response());
    }
    let kind_header = if kind == wbg_guard::ReportKind::Sms {
        "text/plain; charset=utf-8"
    } else {
        "text/markdown; charset=utf-8"
    };
    Ok(([(header::CONTENT_TYPE, kind_header)], text).into_response())
}

#[utoipa::path(get, path = "/v1/forensics/incidents/{id}/notifications", tag = "forensics", summary = "The people to notify of an incident, each with their text message filled in, or their letters (customer service)",
    security(("bearer" = [])), params(("id" = String, Path), NotifyQuery),
    responses((status = 200, body = NotificationList, description = "One notice per exposed customer, with name and phone; every waybill read is audited. \
            With format=markdown or pdf: each person's letter (PIPL art. 57), filled in with their name, waybills and the kinds of their data exposed"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody, description = "The policy opens the incident's customers to customer service only"), (status = 404, body = ApiErrorBody)))]
pub(super) async fn notifications(
    caller: Caller,
    Path(id): Path<String>,
    Q(q): Q<NotifyQuery>,
) -> ApiResult<Response> {
    let scope = match q.scope.as_deref() {
        None | Some("beyond_work") => NotifyScope::BeyondWork,
        Some("all") => NotifyScope::All,
        Some(_) => return Err(ApiError::invalid("scope must be beyond_work or all")),
    };
    let lang = match q.lang.as_deref() {
        None | Some("zh") => wbg_guard::Lang::Zh,
        Some("en") => wbg_guard::Lang::En,
        Some(_) => return Err(ApiError::invalid("lang must be zh or en")),
    };
    let letters = match q.format.as_deref() {
        None | Some("json") => None,
        Some("markdown") => Some(false),
        Some("pdf") => Some(true),
        Some(_) => return Err(ApiError::invalid("format must be json, markdown or pdf")),
    };
    let title = format!("{id} letters {}", q.lang.as_deref().unwrap_or("zh"));
    let (list, text) = caller
        .run(move |g, c| {
            let list = g.notification_list(&c.token, &id, scope, &c.meta)?;
            let text = match letters {
                None => String::new(),
                // The incident is read through the list's own authorization: the policy opened its people to
                // this account, and the letters say nothing the list does not.
                Some(_) => g.letters(&list, lang)?,
            };
            Ok((list, text))
        })
        .await?;
    Ok(match letters {
        None => Json(list).into_response(),
        Some(false) => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            text,
        )
            .into_response(),
        Some(true) => (
            [(header::CONTENT_TYPE, "application/pdf")],
            wbg_label::document_pdf(&title, &text),
        )
            .into_response(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PlantCanaries {
    /// The account whose view they go into.
    account: String,
    /// How many (1-100; default 3).
    #[serde(default)]
    count: Option<usize>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DrawCanaries {
    /// The account whose view they are to reach (they are drawn from the carrier's waybills it would see).
    account: String,
    /// Numbers the carrier's own allocator issued for them (1-100), not yet on any parcel.
    numbers: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Drawn {
    /// The canaries, for the integration to ingest with its normal feed (`POST /v1/waybills`).
    waybills: Vec<wbg_core::NewWaybill>,
}

#[utoipa::path(post, path = "/v1/forensics/canaries/draw", tag = "forensics",
    summary = "Draw canaries from the carrier's own waybills, under numbers its allocator issued, for the integration to ingest like any parcel",
    description = "Each canary copies a real route (merchant, origin and destination outlet) of the account's scope, a real recipient \
        district and street of that destination (building and room numbers scrambled), a real sender district and street and item \
        description of that merchant, and takes names and mobile numbers from the country's distributions. They are marked as \
        canaries for the account before this returns; fed through the integration's normal ingestion and scanned like any parcel, \
        nothing tells them apart. They never take a privacy number (a courier sees a configured decoy). Auditors; audited \
        `canary_plant` and `canary_profile`.",
    security(("bearer" = [])), request_body = DrawCanaries,
    responses((status = 201, body = Drawn), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody),
        (status = 409, body = ApiErrorBody, description = "A number is already on a parcel or a canary")))]
pub(super) async fn draw_canaries(
    caller: Caller,
    Body(req): Body<DrawCanaries>,
) -> ApiResult<(StatusCode, Json<Drawn>)> {
    let waybills = caller
        .run(move |g, c| g.draw_canaries(c.actor(), &req.account, &req.numbers, &c.meta))
        .await?;
    Ok((StatusCode::CREATED, Json(Drawn { waybills })))
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Planted {
    /// The canary waybill numbers.
    waybills: Vec<String>,
}

#[utoipa::path(post, path = "/v1/forensics/canaries", tag = "forensics", summary = "Plant canary waybills in one account's view",
    security(("bearer" = [])), request_body = PlantCanaries,
    responses((status = 201, body = Planted), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn plant_canaries(
    caller: Caller,
    Body(req): Body<PlantCanaries>,
) -> ApiResult<(StatusCode, Json<Planted>)> {
    let count = req.count.unwrap_or(3);
    if !(1..=wbg_guard::MAX_CANARIES).contains(&count) {
        return Err(ApiError::invalid(format!(
            "count must be 1 to {}",
            wbg_guard::MAX_CANARIES
        )));
    }
    let waybills = caller
        .run(move |g, c| {
            let made_up = g.quick_canaries(c.actor(), &req.account, count, &c.meta)?;
            g.plant_canaries(c.actor(), &req.account, made_up, &c.meta)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Planted { waybills })))
}

#[utoipa::path(post, path = "/v1/holds", tag = "forensics",
    summary = "Place a legal hold (PIPL art. 47) on waybills, on every waybill an account was shown in a window, or on an incident's exposed waybills (auditors; audited)",
    description = "While the hold stands, retention carries its waybills forward instead of destroying them, deletion requests wait, \
        and every read is refused — answered like an unknown waybill, so a suspect is not told — except the custodian's, a \
        customer-service account reading with the purpose `legal_hold`, and the work a parcel still under way needs to arrive \
        (delivery, exception handling, its label).",
    security(("bearer" = [])), request_body = HoldRequest,
    responses((status = 201, body = LegalHold), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 413, body = ApiErrorBody),
        (status = 503, body = ApiErrorBody, description = "The audit index an account's window is read from is still being built")))]
pub(super) async fn place_hold(
    caller: Caller,
    Body(req): Body<HoldRequest>,
) -> ApiResult<(StatusCode, Json<LegalHold>)> {
    let hold = caller
        .run(move |g, c| g.place_hold(c.actor(), &req, &c.meta))
        .await?;
    Ok((StatusCode::CREATED, Json(hold)))
}

#[utoipa::path(get, path = "/v1/holds", tag = "forensics", summary = "Every legal hold in brief, newest first (auditors)",
    security(("bearer" = [])),
    responses((status = 200, body = [HoldSummary]), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody)))]
pub(super) async fn holds(caller: Caller) -> ApiResult<Json<Vec<HoldSummary>>> {
    caller
        .run(|g, c| g.holds(c.actor(), &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(get, path = "/v1/holds/{id}", tag = "forensics", summary = "One legal hold with its waybills (auditors; audited)",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = LegalHold), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn hold(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<LegalHold>> {
    caller
        .run(move |g, c| g.hold(c.actor(), &id, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/holds/{id}/release", tag = "forensics",
    summary = "Release a legal hold with a reason (auditors; audited): its waybills go back to retention and to their readers",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = HoldRelease,
    responses((status = 200, body = LegalHold), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody, description = "Released already")))]
pub(super) async fn release_hold(
    caller: Caller,
    Path(id): Path<String>,
    Body(release): Body<HoldRelease>,
) -> ApiResult<Json<LegalHold>> {
    caller
        .run(move |g, c| g.release_hold(c.actor(), &id, &release, &c.meta))
        .await
        .map(Json)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReserveNumbers {
    /// Numbers the carrier's allocator issued and voided in its own system, so no parcel will carry them (1-10,000).
    numbers: Vec<String>,
}

#[utoipa::path(post, path = "/v1/forensics/canaries/reserve", tag = "forensics",
    summary = "Hand the guard numbers the carrier's allocator issued (and voided) for the canaries it numbers itself: export files' canary rows and quick plants",
    description = "With the reserve empty those canaries take numbers from the top of the serial range (`YT9…`), which an insider who \
        knows the series can spot. Auditors; audited `canary_reserve` (counts, never the numbers).",
    security(("bearer" = [])), request_body = ReserveNumbers,
    responses((status = 200, body = wbg_guard::CanaryReserve), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 409, body = ApiErrorBody, description = "A number is repeated, on a parcel, a canary or reserved already"),
        (status = 413, body = ApiErrorBody)))]
pub(super) async fn reserve_canary_numbers(
    caller: Caller,
    Body(req): Body<ReserveNumbers>,
) -> ApiResult<Json<wbg_guard::CanaryReserve>> {
    caller
        .run(move |g, c| g.reserve_canary_numbers(c.actor(), &req.numbers, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(get, path = "/v1/forensics/canaries/reserve", tag = "forensics",
    summary = "How many reserved canary numbers are left (auditors)",
    security(("bearer" = [])),
    responses((status = 200, body = wbg_guard::CanaryReserve), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody)))]
pub(super) async fn canary_reserve(caller: Caller) -> ApiResult<Json<wbg_guard::CanaryReserve>> {
    caller
        .run(|g, c| g.canary_reserve(c.actor(), &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(get, path = "/v1/risk/thresholds", tag = "alerts", summary = "The risk score thresholds in force, and where they come from (auditors, admins)",
    security(("bearer" = [])),
    responses((status = 200, body = wbg_guard::ThresholdsInForce), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody)))]
pub(super) async fn thresholds(caller: Caller) -> ApiResult<Json<wbg_guard::ThresholdsInForce>> {
    caller
        .run(|g, c| g.thresholds(c.actor(), &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/risk/thresholds/backtest", tag = "alerts",
    summary = "What new score thresholds would have done over the last 30 days: alerts, masks, suspensions, and the alerts they would have hidden (with their triage) or added (auditors)",
    description = "Every guarded read of the last 30 days is replayed from the audit log through two fresh engines, one with the \
        thresholds in force and one with the proposal. Audited `risk_thresholds_backtest` with the figures.",
    security(("bearer" = [])), request_body = wbg_guard::ThresholdProposal,
    responses((status = 200, body = wbg_guard::ThresholdBacktest), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 409, body = ApiErrorBody, description = "This node's risk hook has no thresholds")))]
pub(super) async fn backtest_thresholds(
    caller: Caller,
    Body(p): Body<wbg_guard::ThresholdProposal>,
) -> ApiResult<Json<wbg_guard::ThresholdBacktest>> {
    caller
        .run(move |g, c| g.backtest_thresholds(c.actor(), &p, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/risk/thresholds", tag = "alerts",
    summary = "Apply new score thresholds with a reason: backtested first, refused when they would have hidden confirmed alerts unless accept_confirmed (auditors)",
    description = "Kept in the store: every node puts it in force within its upkeep's next refresh, and a restart keeps it. \
        Audited `risk_thresholds` with the reason and the backtest's figures.",
    security(("bearer" = [])), request_body = wbg_guard::ThresholdProposal,
    responses((status = 200, body = wbg_guard::ThresholdsInForce), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody),
        (status = 409, body = ApiErrorBody, description = "It would have hidden confirmed alerts (set accept_confirmed), or this node's risk hook has no thresholds")))]
pub(super) async fn apply_thresholds(
    caller: Caller,
    Body(p): Body<wbg_guard::ThresholdProposal>,
) -> ApiResult<Json<wbg_guard::ThresholdsInForce>> {
    caller
        .run(move |g, c| g.apply_thresholds(c.actor(), &p, &c.meta))
        .await
        .map(Json)
}
