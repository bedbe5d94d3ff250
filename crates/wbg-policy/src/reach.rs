//! What an account can see, derived from the policy itself: for each purpose, the richest view the policy
//! grants the account in any situation a read can be in (statuses, outlets, couriers, merchants, times, tickets,
//! incidents, exceptions), with the situation and the rules that grant it. An access review reads this, not a
//! hand-written table, so it stays true when the policy changes.
use crate::{PolicyEngine, PolicyError, ReadContext, TicketFacts};
use wbg_core::{
    Account, AccountId, MerchantId, OutletId, Purpose, View, WaybillMeta, WaybillNo, WaybillStatus,
};

/// The richest view one purpose can give an account, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The purpose.
    pub purpose: Purpose,
    /// The richest view in any situation; `None` if the purpose gives nothing.
    pub view: Option<View>,
    /// The first situation found that gives it, in words.
    pub when: String,
    /// The rules that grant it there.
    pub policies: Vec<String>,
}

const STATUSES: [WaybillStatus; 8] = [
    WaybillStatus::Created,
    WaybillStatus::PickedUp,
    WaybillStatus::InTransit,
    WaybillStatus::AtOutlet,
    WaybillStatus::OutForDelivery,
    WaybillStatus::Signed,
    WaybillStatus::Returned,
    WaybillStatus::Exception,
];

impl PolicyEngine {
    /// For each purpose, the richest view `account` can get at `now_secs` and a situation that gives it (see
    /// the module doc). Evaluated without the decision cache, so a review does not crowd out live reads.
    pub fn reach(&self, account: &Account, now_secs: i64) -> Result<Vec<Reach>, PolicyError> {
        let parse = |s: &str| OutletId::parse(s).map_err(|e| PolicyError::Request(Box::new(e)));
        let own = account.outlet.clone().unwrap_or(parse("O-none")?);
        let elsewhere = parse("O-elsewhere")?;
        let merchant_own = account
            .merchant
            .clone()
            .unwrap_or(MerchantId::parse("M-none").map_err(|e| PolicyError::Request(Box::new(e)))?);
        let merchant_other =
            MerchantId::parse("M-other").map_err(|e| PolicyError::Request(Box::new(e)))?;
        let other_courier =
            AccountId::parse("C-other").map_err(|e| PolicyError::Request(Box::new(e)))?;
        let no = WaybillNo::parse("REVIEW0001").map_err(|e| PolicyError::Request(Box::new(e)))?;
        let now = now_secs.saturating_mul(1000);
        let mut out = Vec::new();
        for purpose in Purpose::ALL {
            let mut best: Option<Reach> = None;
            'search: for status in STATUSES {
                for (place, origin, destination) in [
                    ("to its outlet", &elsewhere, &own),
                    ("from its outlet", &own, &elsewhere),
                    ("elsewhere", &elsewhere, &elsewhere),
                ] {
                    for (whose, courier) in [
                        ("assigned to it", Some(&account.id)),
                        ("assigned to another courier", Some(&other_courier)),
                        ("unassigned", None),
                    ] {
                        for (shop, merchant) in [
                            ("its merchant's", &merchant_own),
                            ("another merchant's", &merchant_other),
                        ] {
                            for (age, ago) in [("10 minutes", 600_000), ("3 days", 3 * 86_400_000)]
                            {
                                let wb = WaybillMeta {
                                    waybill_no: no.clone(),
                                    merchant: merchant.clone(),
                                    origin_outlet: origin.clone(),
                                    destination_outlet: destination.clone(),
                                    courier: courier.cloned(),
                                    status,
                                    created_at: now - ago - 86_400_000,
                                    updated_at: now - ago,
                                    signed_at: (status == WaybillStatus::Signed)
                                        .then_some(now - ago),
                                    bucket: 0,
                                };
                                for (work, ctx) in
                                    contexts(purpose, status, now_secs, &own, &elsewhere)
                                {
                                    let v = self.decide_view_uncached(account, &wb, &ctx)?;
                                    if v.view > best.as_ref().and_then(|b| b.view) {
                                        best = Some(Reach {
                                            purpose,
                                            view: v.view,
                                            when: format!(
                                                "a {shop} parcel {}, {place}, {whose}, last scanned {age} ago{work}",
                                                status.as_str()
                                            ),
                                            policies: v.policies,
                                        });
                                        if v.view == Some(View::Full) {
                                            break 'search;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            out.push(best.unwrap_or(Reach {
                purpose,
                view: None,
                when: "never".into(),
                policies: Vec::new(),
            }));
        }
        Ok(out)
    }
}

/// The work situations worth trying for `purpose` and `status`: tickets for customer service, an incident for
/// breach notification, a legal hold for its custodian, where an exception was registered.
fn contexts<'a>(
    purpose: Purpose,
    status: WaybillStatus,
    now_secs: i64,
    own: &'a OutletId,
    elsewhere: &'a OutletId,
) -> Vec<(&'static str, ReadContext<'a>)> {
    let base = ReadContext {
        purpose,
        now_secs,
        has_ticket: false,
        in_incident: false,
        in_hold: false,
        ticket: TicketFacts::default(),
        exception_outlet: None,
    };
    let mut out = vec![("", base)];
    if purpose == Purpose::CustomerService {
        out.push((
            ", naming an unregistered ticket",
            ReadContext {
                has_ticket: true,
                ..base
            },
        ));
        out.push((
            ", on an open ticket registered for it",
            ReadContext {
                has_ticket: true,
                ticket: TicketFacts {
                    open_for_waybill: true,
                    assigned_elsewhere: false,
                    reads: 0,
                },
                ..base
            },
        ));
    }
    if purpose == Purpose::BreachNotification {
        out.push((
            ", exposed in an open incident",
            ReadContext {
                in_incident: true,
                ..base
            },
        ));
    }
    if purpose == Purpose::LegalHold {
        out.push((
            ", held by a legal hold it is the custodian of",
            ReadContext {
                in_hold: true,
                ..base
            },
        ));
    }
    if status == WaybillStatus::Exception {
        for (what, at) in [
            (", its exception registered at its outlet", own),
            (", its exception registered elsewhere", elsewhere),
        ] {
            out.push((
                what,
                ReadContext {
                    exception_outlet: Some(at),
                    ..base
                },
            ));
        }
    }
    out
}
