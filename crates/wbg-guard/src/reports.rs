//! The reports a leak of waybill data owes, in Chinese and English, drawn from the incident's impact report:
//! a text message and a letter to each person (PIPL art. 57: what happened, which data, the possible harm, the
//! measures taken, what they can do, a contact), the report to the provincial cyberspace administration (the 2025
//! incident-reporting measures), the report to the local postal administration (Express Delivery Interim
//! Regulations art. 34) and the package for the police (the attribution and how to verify it). None names a
//! person: the individual notices are templates, which the notification list fills in for each person
//! ([`ImpactReport::sms_to`], [`ImpactReport::letter_to`]: their name, their waybills, their data's kinds).
use crate::breach::{ImpactReport, Notice};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// The text message to each person (≤ 70 characters in Chinese).
    Sms,
    /// The letter to each person.
    Letter,
    /// The provincial cyberspace administration.
    Regulator,
    /// The local postal administration.
    Postal,
    /// The police.
    Police,
}

impl ReportKind {
    /// Parses `sms`, `letter`, `regulator`, `postal`, `police`.
    pub fn parse(s: &str) -> Option<ReportKind> {
        Some(match s {
            "sms" => ReportKind::Sms,
            "letter" => ReportKind::Letter,
            "regulator" => ReportKind::Regulator,
            "postal" => ReportKind::Postal,
            "police" => ReportKind::Police,
            _ => return None,
        })
    }
}

/// Chinese or English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// 中文.
    Zh,
    /// English.
    En,
}

/// `[incidents.contact]`: who the reports say is speaking and how to reach them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ReportContact {
    /// The carrier's name as people know it (default `快递公司`).
    pub carrier: String,
    /// The carrier's name in English (default `the carrier`).
    pub carrier_en: String,
    /// The hotline people call (default `95000`).
    pub phone: String,
    /// The office that answers for personal-information protection (default `个人信息保护负责人`).
    pub officer: String,
}

impl Default for ReportContact {
    fn default() -> Self {
        ReportContact {
            carrier: "快递公司".into(),
            carrier_en: "the carrier".into(),
            phone: "95000".into(),
            officer: "个人信息保护负责人".into(),
        }
    }
}

/// The kinds of personal data the incident's fields name, in `lang`, without repeats.
fn kinds(r: &ImpactReport, lang: Lang) -> Vec<&'static str> {
    kinds_in(r.fields.keys().map(String::as_str), lang)
}

/// The kinds of personal data `fields` (as the audit log names them) name, in `lang`, without repeats.
fn kinds_in<'a>(fields: impl IntoIterator<Item = &'a str>, lang: Lang) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for f in fields {
        let k = match (
            f.split(':')
                .next()
                .unwrap_or(f)
                .rsplit('.')
                .next()
                .unwrap_or(f),
            lang,
        ) {
            ("name", Lang::Zh) => "姓名",
            ("phone", Lang::Zh) => "电话",
            ("detail", Lang::Zh) => "详细地址",
            ("region", Lang::Zh) => "省市区",
            ("items", Lang::Zh) => "物品信息",
            ("name", Lang::En) => "name",
            ("phone", Lang::En) => "phone number",
            ("detail", Lang::En) => "street address",
            ("region", Lang::En) => "province, city and district",
            ("items", Lang::En) => "what the parcel held",
            _ => continue,
        };
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

fn t(ms: i64) -> String {
    wbg_core::when::display(ms)
}

fn grade_name(g: &str, lang: Lang) -> &'static str {
    match (g, lang) {
        ("especially_major", Lang::Zh) => "特别重大",
        ("major", Lang::Zh) => "重大",
        ("larger", Lang::Zh) => "较大",
        (_, Lang::Zh) => "一般",
        ("especially_major", Lang::En) => "especially major",
        ("major", Lang::En) => "major",
        ("larger", Lang::En) => "larger",
        (_, Lang::En) => "general",
    }
}

/// The earliest suspension of a suspect in the window, if any.
fn contained_at(r: &ImpactReport) -> Option<i64> {
    r.per_suspect.iter().filter_map(|s| s.suspended_at).min()
}

impl ImpactReport {
    /// The report of `kind` in `lang`, as Markdown (the text message as plain text).
    pub fn owed_report(&self, kind: ReportKind, lang: Lang, c: &ReportContact) -> String {
        match kind {
            ReportKind::Sms => self.sms(lang, c),
            ReportKind::Letter => self.letter(lang, c),
            ReportKind::Regulator => self.authority(lang, c, false),
            ReportKind::Postal => self.authority(lang, c, true),
            ReportKind::Police => self.police(lang, c),
        }
    }

    fn sms(&self, lang: Lang, c: &ReportContact) -> String {
        self.sms_for(lang, c, None)
    }

    /// The text message to one person of the notification list, filled in: their name masked (a text message
    /// passes through carriers' systems), the last four digits of their waybill, the kinds of their data that
    /// were exposed. In Chinese at most 70 characters: shorter forms are used until it fits.
    pub fn sms_to(&self, n: &Notice, lang: Lang, c: &ReportContact) -> String {
        self.sms_for(lang, c, Some(n))
    }

    fn sms_for(&self, lang: Lang, c: &ReportContact, n: Option<&Notice>) -> String {
        let k = match n {
            Some(n) => kinds_in(n.fields.iter().map(String::as_str), lang),
            None => kinds(self, lang),
        };
        let parcel = n.and_then(|n| {
            let first = n.waybills.first()?;
            let tail: String = first
                .chars()
                .skip(first.chars().count().saturating_sub(4))
                .collect();
            Some((tail, n.waybills.len()))
        });
        match lang {
            Lang::Zh => {
                let hello = n
                    .map(|n| format!("{}您好，", wbg_vault::mask_name(&n.name)))
                    .unwrap_or_default();
                let yours = match &parcel {
                    Some((tail, 1)) => format!("您尾号{tail}的快递单"),
                    Some((tail, more)) => format!("您尾号{tail}等{more}件快递单"),
                    None => "您快递单".into(),
                };
                let candidates = [
                    format!(
                        "【{}】{hello}{yours}上的{}可能被内部人员违规查询泄露，相关账号已停用。请警惕冒充快递、退款的来电。咨询{}",
                        c.carrier, k.join("、"), c.phone
                    ),
                    format!(
                        "【{}】{hello}{yours}上的{}可能泄露，账号已停用。谨防诈骗来电。咨询{}",
                        c.carrier, k.join("、"), c.phone
                    ),
                    format!(
                        "【{}】{yours}的信息可能泄露，账号已停用。谨防诈骗来电。咨询{}",
                        c.carrier, c.phone
                    ),
                ];
                candidates
                    .iter()
                    .find(|s| s.chars().count() <= 70)
                    .cloned()
                    .unwrap_or_else(|| {
                        format!(
                            "【{}】您的快递信息可能泄露，账号已停用。谨防诈骗来电。咨询{}",
                            c.carrier, c.phone
                        )
                    })
            }
            Lang::En => {
                let yours = match &parcel {
                    Some((tail, 1)) => format!("your parcel ending {tail}"),
                    Some((tail, more)) => format!("your {more} parcels (one ending {tail})"),
                    None => "your parcel".into(),
                };
                format!(
                    "{}: the {} on {yours} may have been exposed by misuse of a staff account, now blocked. Beware of calls \
                     about refunds or parcels. Help: {}",
                    c.carrier_en,
                    k.join(", "),
                    c.phone
                )
            }
        }
    }

    fn letter(&self, lang: Lang, c: &ReportContact) -> String {
        self.letter_for(lang, c, None)
    }

    /// The letter to one person of the notification list, filled in: addressed to them by name, with their
    /// waybills and the kinds of their data that were exposed (Markdown; `?format=pdf` sets it as a page).
    pub fn letter_to(&self, n: &Notice, lang: Lang, c: &ReportContact) -> String {
        self.letter_for(lang, c, Some(n))
    }

    fn letter_for(&self, lang: Lang, c: &ReportContact, n: Option<&Notice>) -> String {
        let mut md = String::new();
        let contained = contained_at(self);
        let k = match n {
            Some(n) => kinds_in(n.fields.iter().map(String::as_str), lang),
            None => kinds(self, lang),
        };
        match lang {
            Lang::Zh => {
                let dear = n.map_or_else(|| "客户".to_owned(), |n| n.name.clone());
                let _ = writeln!(md, "# 个人信息泄露告知书\n\n尊敬的{dear}：\n");
                let _ = writeln!(md, "## 发生了什么\n\n{} 至 {} 期间，{}的内部账号违规查询了快递运单信息，其中包括您的快递。我们的风控系统于事后发现并确认了这一情况（事件编号 {}）。\n",
                    t(self.from), t(self.to), c.carrier, self.incident);
                if let Some(n) = n {
                    let _ = writeln!(md, "涉及您的快递单：{}。\n", n.waybills.join("、"));
                }
                let _ = writeln!(
                    md,
                    "## 涉及哪些信息\n\n您快递单上的：{}。不涉及银行卡、身份证号码或密码。\n",
                    k.join("、")
                );
                let _ = writeln!(md, "## 可能的影响\n\n不法分子可能冒充快递员、客服或商家，以理赔、退款、包裹异常等理由联系您，诱导转账、索要验证码或点击链接；也可能出现骚扰电话或上门推销。\n");
                let _ = writeln!(md, "## 我们已采取的措施\n");
                if let Some(at) = contained {
                    let _ = writeln!(md, "- {} 停用了相关账号；", t(at));
                } else {
                    let _ = writeln!(md, "- 停用了相关账号；");
                }
                let _ = writeln!(md, "- 保全了完整、不可篡改的访问记录，并已报告主管部门、向公安机关报案；\n- 对同类账号加强了访问限制与实时监测。\n");
                let _ = writeln!(md, "## 您可以做什么\n\n- 对提到您快递信息的来电保持警惕：我们不会以任何理由要求您转账或提供验证码；\n- 不点击短信中的不明链接；\n- 如已受骗，请立即拨打 110 报警。\n");
                let _ = writeln!(
                    md,
                    "## 联系我们\n\n{}：{}（{}）。\n",
                    c.carrier, c.phone, c.officer
                );
            }
            Lang::En => {
                let dear = n.map_or_else(|| "customer".to_owned(), |n| n.name.clone());
                let _ = writeln!(
                    md,
                    "# Notice of a personal-information breach\n\nDear {dear},\n"
                );
                let _ = writeln!(md, "## What happened\n\nBetween {} and {}, a staff account of {} looked up parcel records it had no work with, yours among them. Our monitoring found and confirmed it (incident {}).\n",
                    t(self.from), t(self.to), c.carrier_en, self.incident);
                if let Some(n) = n {
                    let _ = writeln!(md, "Your waybills concerned: {}.\n", n.waybills.join(", "));
                }
                let _ = writeln!(md, "## Which data\n\nFrom your waybill: {}. No bank card, ID number or password was involved.\n", k.join(", "));
                let _ = writeln!(md, "## What could happen\n\nSomeone may call you posing as a courier, customer service or a shop — about compensation, a refund or a problem with a parcel — to get you to pay, give a verification code or open a link; or you may get nuisance calls or visits.\n");
                let _ = writeln!(md, "## What we have done\n");
                match contained {
                    Some(at) => {
                        let _ = writeln!(md, "- blocked the account at {};", t(at));
                    }
                    None => {
                        let _ = writeln!(md, "- blocked the account;");
                    }
                }
                let _ = writeln!(md, "- preserved the complete, tamper-evident record of its lookups, reported to the authorities and to the police;\n- tightened and monitor access for accounts of its kind.\n");
                let _ = writeln!(md, "## What you can do\n\n- Be wary of any call that mentions your parcel: we never ask you to pay or to give a verification code;\n- do not open links in unexpected messages;\n- if you have been defrauded, call the police (110) at once.\n");
                let _ = writeln!(
                    md,
                    "## Contact\n\n{}: {} ({}).\n",
                    c.carrier_en, c.phone, c.officer
                );
            }
        }
        md
    }

    fn authority(&self, lang: Lang, c: &ReportContact, postal: bool) -> String {
        let mut md = String::new();
        let regions: Vec<String> = self
            .by_region
            .iter()
            .take(10)
            .map(|r| format!("{}{} {}", r.province, r.city, r.customers))
            .collect();
        let suspects: Vec<String> = self
            .per_suspect
            .iter()
            .map(|s| format!("`{}`", s.principal))
            .collect();
        match lang {
            Lang::Zh => {
                let title = if postal {
                    "快递用户信息泄露事件报告（邮政管理部门）"
                } else {
                    "网络安全事件报告（个人信息泄露）"
                };
                let _ = writeln!(md, "# {title}\n");
                let _ = writeln!(
                    md,
                    "- 报告单位：{}\n- 事件编号：{}\n- 事件级别：{}\n- 发现时间：{}",
                    c.carrier,
                    self.incident,
                    grade_name(&self.grade, lang),
                    t(self.created_at)
                );
                if let Some(due) = self.regulator_report_due {
                    let _ = writeln!(md, "- 报告时限：{} 前", t(due));
                }
                let _ = writeln!(md, "- 事件时段：{} 至 {}\n", t(self.from), t(self.to));
                let _ = writeln!(md, "## 事件经过\n\n内部账号 {} 超出其工作所需查询快递运单个人信息。风控系统告警后经审计确认；访问记录完整保存于防篡改审计日志中。\n", suspects.join("、"));
                let _ = writeln!(md, "## 影响范围\n\n- 涉及个人：{} 人（其中完整信息 {} 人；超出工作所需 {} 人）\n- 涉及运单：{} 件（完整 {} 件）\n- 信息类型：{}\n- 主要地区：{}\n",
                    self.customers, self.customers_full, self.customers_beyond_work, self.waybills, self.waybills_full,
                    kinds(self, lang).join("、"), if regions.is_empty() { "—".into() } else { regions.join("；") });
                let _ = writeln!(md, "## 已采取措施\n\n- 停用涉事账号{}；\n- 保全审计日志及其签名检查点，形成可独立验证的证据包；\n- 向受影响个人逐一告知（短信与告知书）；\n- 向公安机关报案。\n",
                    contained_at(self).map(|at| format!("（{}）", t(at))).unwrap_or_default());
                if postal {
                    let _ = writeln!(md, "## 依据\n\n《快递暂行条例》第三十四条：发生或者可能发生用户信息泄露的，应当立即采取补救措施，并向所在地邮政管理部门报告。\n");
                }
                let _ = writeln!(md, "## 联系人\n\n{}，{}。\n", c.officer, c.phone);
            }
            Lang::En => {
                let title = if postal {
                    "Report of a parcel-user data breach (postal administration)"
                } else {
                    "Cybersecurity incident report (personal-information breach)"
                };
                let _ = writeln!(md, "# {title}\n");
                let _ = writeln!(
                    md,
                    "- Reporting organisation: {}\n- Incident: {}\n- Grade: {}\n- Found: {}",
                    c.carrier_en,
                    self.incident,
                    grade_name(&self.grade, lang),
                    t(self.created_at)
                );
                if let Some(due) = self.regulator_report_due {
                    let _ = writeln!(md, "- Report due by: {}", t(due));
                }
                let _ = writeln!(md, "- Window: {} to {}\n", t(self.from), t(self.to));
                let _ = writeln!(md, "## What happened\n\nStaff account(s) {} looked up waybill personal data beyond what their work needed. The monitoring alerted and the audit confirmed it; every access is kept in a tamper-evident audit log.\n", suspects.join(", "));
                let _ = writeln!(md, "## Scope\n\n- People: {} ({} in full; {} beyond the accounts' work)\n- Waybills: {} ({} in full)\n- Data: {}\n- Main regions: {}\n",
                    self.customers, self.customers_full, self.customers_beyond_work, self.waybills, self.waybills_full,
                    kinds(self, lang).join(", "), if regions.is_empty() { "—".into() } else { regions.join("; ") });
                let _ = writeln!(md, "## Measures taken\n\n- The account(s) blocked{};\n- the audit log and its signed checkpoints preserved as an independently verifiable evidence pack;\n- every person affected told (text message and letter);\n- reported to the police.\n",
                    contained_at(self).map(|at| format!(" ({})", t(at))).unwrap_or_default());
                if postal {
                    let _ = writeln!(md, "## Basis\n\nExpress Delivery Interim Regulations, art. 34: where user information is or may be leaked, remedy it at once and report to the local postal administration.\n");
                }
                let _ = writeln!(md, "## Contact\n\n{}, {}.\n", c.officer, c.phone);
            }
        }
        md
    }

    fn police(&self, lang: Lang, c: &ReportContact) -> String {
        let mut md = String::new();
        let (h, intro, cols, verify) = match lang {
            Lang::Zh => (
                "# 报案材料：快递用户信息泄露",
                format!("报案单位：{}。事件编号 {}，时段 {} 至 {}。", c.carrier, self.incident, t(self.from), t(self.to)),
                "| 账号 | 查询次数 | 工作所需 | 超出工作 | 超出工作的运单 | 首次 | 最后 | 告警 | 停用 |\n|---|---:|---:|---:|---:|---|---|---:|---|",
                "## 证据的核验\n\n每次访问均记录于按 RFC 6962 构建、以 Ed25519 签名检查点固定的审计日志中。证据包（`GET /v1/cases/{id}/evidence-pack` 或告警的证据包）包含原始记录、包含证明、签名检查点与验证公钥，可用 `wbguard audit verify-pack` 离线核验，无需信任本公司系统。",
            ),
            Lang::En => (
                "# Complaint file: leak of parcel users' data",
                format!("Filed by {}. Incident {}, window {} to {}.", c.carrier_en, self.incident, t(self.from), t(self.to)),
                "| account | reads | for its work | beyond it | waybills beyond | first | last | alerts | blocked |\n|---|---:|---:|---:|---:|---|---|---:|---|",
                "## Verifying the evidence\n\nEvery access is an entry of an RFC 6962 audit log fixed by Ed25519-signed checkpoints. The evidence pack (`GET /v1/cases/{id}/evidence-pack`, or an alert's) holds the entries as recorded, their inclusion proofs, the signed checkpoint and the verifier key; `wbguard audit verify-pack` checks it offline, with no trust in our systems.",
            ),
        };
        let _ = writeln!(md, "{h}\n\n{intro}\n\n{cols}");
        for s in &self.per_suspect {
            let o = |v: Option<i64>| v.map(t).unwrap_or_else(|| "—".into());
            let _ = writeln!(
                md,
                "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.principal,
                s.exposures,
                s.exposures_work,
                s.exposures_beyond,
                s.waybills_beyond,
                o(s.first),
                o(s.last),
                s.alerts,
                o(s.suspended_at)
            );
        }
        let _ = writeln!(md, "\n{verify}\n");
        let _ = writeln!(md, "{}", match lang {
            Lang::Zh => format!("受影响的运单清单见本事件 CSV（共 {} 件，超出工作所需 {} 件）。", self.waybills, self.waybills_beyond_work),
            Lang::En => format!("The affected waybills are listed in the incident's CSV ({} in all, {} beyond the accounts' work).", self.waybills, self.waybills_beyond_work),
        });
        md
    }
}
