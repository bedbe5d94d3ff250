//! The guard: the one path every read of personal data takes, and the only code that opens the vault.
//!
//! ```text
//! request ─▶ authenticate ─▶ account active? ─▶ POLICY (Cedar: richest view permitted for the purpose)
//!         ─▶ RISK hook (may refuse or step the view down) ─▶ AUDIT append (before anything is decrypted)
//!         ─▶ decrypt exactly the fields of the decided view ─▶ response
//! ```
//!
//! Denials are audited like grants. Writes (ingest, scan events, account administration) pass the same
//! authentication, status and policy steps and are audited in the transaction that performs them.
#![deny(missing_docs)]

mod admin;
mod alerts;
mod audit;
mod breach;
mod canary;
mod cases;
mod credentials;
mod error;
mod events;
mod explain;
mod export;
mod forensics;
mod guard;
mod hold;
mod ingest;
mod keys;
mod label;
mod lifecycle;
mod numbers;
mod policies;
mod read;
mod replay;
mod reports;
mod retention;
mod review;
mod rights;
mod suppress;
mod thresholds;
mod token;
mod track;
mod view;
mod work;

pub use admin::{AccountDetail, AccountSummary};
pub use alerts::{AlertDetail, TriageRequest, REASON_CODES};
pub use audit::{verify_store, verify_store_with, AuditSearchPage};
pub use breach::{
    AffectedWaybill, DayCount, ImpactReport, IncidentChange, IncidentConfig, IncidentRequest,
    IncidentStateChange, IncidentSummary, Notice, NotificationList, NotifyScope, RegionCount,
    SuspectImpact, TimelineEvent, INCIDENT_REASONS, MAX_INCIDENT_WAYBILLS, MAX_SUSPECTS,
};
pub use canary::{
    CanaryProfile, CanaryReserve, DrawScope, MAX_CANARIES, MAX_RESERVE, MAX_RESERVE_BATCH,
    PROFILE_SAMPLE,
};
pub use cases::{
    Case, CaseChange, CheckItem, EvidenceItem, NewCase, NewEvidence, CASE_FINDINGS, CASE_LIMIT,
    DEFAULT_CHECKLIST,
};
pub use credentials::{
    CredentialConfig, Enrolment, EnrolmentCode, Issued, IssuedToken, JwksSource, OidcConfig,
    OidcLogin, WhoAmI,
};
pub use error::GuardError;
pub use events::{EventBatchReport, RowFault, ScanEvent};
pub use explain::{AlertExplanation, Entitlement, ExplainedRead, ReadSummary};
pub use export::{
    export_canaries, Export, ExportFile, ExportRequest, ExportStatus, MAX_EXPORT_ROWS,
    MAX_EXPORT_WINDOW_MS,
};
pub use forensics::{Attribution, LeakColumn};
pub use guard::{
    Actor, AlertSink, Guard, GuardConfig, MaskingConfig, OpenReport, ReadRequest, RequestMeta,
};
pub use hold::{HoldRelease, HoldRequest, HoldSummary, LegalHold, MAX_HOLD_WAYBILLS};
pub use ingest::{sealed_waybill, IngestReport, MAX_BATCH};
pub use keys::{
    default_key_dir, finish_rotation, KeyConfig, AUDIT_KEY_ENV, AUDIT_KEY_FILE, MASTER_KEY_FILE,
    NEXT_MASTER_KEY_FILE,
};
pub use label::{PrintedLabel, LABEL_TOKEN_PREFIX, LABEL_TOKEN_TTL_MS};
pub use lifecycle::{
    on_roster, parse_roster, quarter_of, Attestation, LifecycleConfig, RosterReport, RosterRow,
    RosterTransfer, MAX_ROSTER_ROWS,
};
pub use numbers::{BindingChange, CallRoute, NumberGateway, PrivacyNumbers, MAX_POOL};
pub use policies::{PolicyVersion, MAX_POLICY_BYTES};
pub use replay::{DecisionChange, ReplayReport};
pub use reports::{Lang, ReportContact, ReportKind};
pub use retention::{
    CarriedBucket, Minimum, Minimums, RetentionPlan, RetentionPolicy, RetentionRun, ShreddedBucket,
};
pub use review::{
    review_csv, PurposeAccess, ReviewRow, ScaleDuty, ScaleReport, REVIEW_WINDOW_DAYS, SCALE_DUTIES,
};
pub use rights::{AccessRecord, ErasureAnswer, RightsAnswer, RightsRequest, WaybillAccesses};
pub use suppress::{
    Backtest, SuppressedAlerts, Suppression, SuppressionRequest, SuppressionScope, BACKTEST_DAYS,
    MAX_SUPPRESSION_DAYS, SUPPRESSION_REASONS,
};
pub use thresholds::{
    DetectorTally, HiddenAlert, ReplayOutcome, ScorePath, ScorePoint, ThresholdBacktest,
    ThresholdProposal, ThresholdsInForce, THRESHOLD_BACKTEST_DAYS, THRESHOLD_REASONS,
};
pub use token::{hash_token, new_token};
pub use track::{TrackRefusal, TrackedRecipient, TrackedScan, Tracking, TrackingConfig};
pub use view::{MaskedAddress, PartyView, WaybillView};
pub use wbg_label::{Format as LabelFormat, Label};
pub use wbg_risk::{
    Access, Engine, NoRisk, RateLimitConfig, RateLimiter, RiskAction, RiskAlert, RiskConfig,
    RiskHook, RiskVerdict,
};
pub use work::{TicketRecord, TicketRegistration, MAX_TICKET_WAYBILLS};
