//! Synthetic carriers: outlets across real provinces, cities and districts, accounts for every role, customers
//! and waybills — all from a seed, so a run can be repeated exactly. No real person's data is used: names are
//! drawn from common surnames and given-name characters, phones from valid mobile prefixes.
#![deny(missing_docs)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wbg_core::{Address, MerchantId, NewWaybill, OutletId, Party, Role, WaybillNo};

const REGIONS: &[(&str, &str, &[&str])] = &[
    (
        "浙江省",
        "杭州市",
        &["萧山区", "西湖区", "余杭区", "拱墅区"],
    ),
    ("浙江省", "宁波市", &["鄞州区", "海曙区", "北仑区"]),
    ("江苏省", "南京市", &["玄武区", "鼓楼区", "江宁区"]),
    ("江苏省", "苏州市", &["姑苏区", "吴中区", "工业园区"]),
    (
        "广东省",
        "广州市",
        &["天河区", "越秀区", "海珠区", "白云区"],
    ),
    (
        "广东省",
        "深圳市",
        &["南山区", "福田区", "宝安区", "龙岗区"],
    ),
    (
        "上海市",
        "上海市",
        &["浦东新区", "徐汇区", "静安区", "闵行区"],
    ),
    (
        "北京市",
        "北京市",
        &["朝阳区", "海淀区", "东城区", "丰台区"],
    ),
    ("四川省", "成都市", &["武侯区", "锦江区", "青羊区"]),
    ("湖北省", "武汉市", &["江汉区", "洪山区", "武昌区"]),
    ("山东省", "青岛市", &["市南区", "崂山区", "黄岛区"]),
    ("河南省", "郑州市", &["金水区", "二七区", "中原区"]),
];
const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "欧阳", "司马",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "刚", "桂英", "子涵", "浩然", "欣怡",
];
const STREETS: &[&str] = &[
    "建设路",
    "人民路",
    "解放路",
    "中山路",
    "文化路",
    "和平路",
    "新华路",
    "学府路",
    "滨江路",
    "花园路",
];
const MOBILE_PREFIXES: &[&str] = &[
    "130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "158", "159",
    "176", "177", "180", "186", "187", "188", "189", "199",
];
const ITEMS: &[&str] = &[
    "书籍",
    "手机壳",
    "运动鞋",
    "茶叶",
    "婴儿奶粉",
    "保健品",
    "连衣裙",
    "耳机",
    "厨房用具",
    "化妆品",
];

/// 12345 → `YT0000000012345`: how a synthetic carrier numbers its waybills.
pub fn waybill_no(serial: u64) -> String {
    format!("YT{serial:013}")
}

/// `YT0000000012345` → 12345: the serial of a synthetic carrier's waybill number.
pub fn serial_of(no: &str) -> Option<u64> {
    no.strip_prefix("YT")?.parse().ok()
}

/// An outlet and the district it serves.
#[derive(Debug, Clone)]
pub struct Outlet {
    /// Id.
    pub id: OutletId,
    /// Province, city, district.
    pub region: (String, String, String),
}

/// An account of the synthetic carrier.
#[derive(Debug, Clone)]
pub struct SimAccount {
    /// Id.
    pub id: String,
    /// Role.
    pub role: Role,
    /// Outlet, for outlet-bound roles.
    pub outlet: Option<String>,
    /// Merchant, for merchants.
    pub merchant: Option<String>,
}

/// The size of a synthetic carrier.
#[derive(Debug, Clone, Copy)]
pub struct CarrierSpec {
    /// Outlets.
    pub outlets: usize,
    /// Couriers per outlet.
    pub couriers_per_outlet: usize,
    /// Outlet staff per outlet.
    pub staff_per_outlet: usize,
    /// Merchants (each with one merchant account).
    pub merchants: usize,
    /// Customer-service agents.
    pub cs_agents: usize,
    /// Distinct customers (recipients).
    pub customers: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for CarrierSpec {
    fn default() -> Self {
        CarrierSpec {
            outlets: 60,
            couriers_per_outlet: 6,
            staff_per_outlet: 2,
            merchants: 40,
            cs_agents: 20,
            customers: 20_000,
            seed: 7,
        }
    }
}

/// A generated carrier.
#[derive(Debug, Clone)]
pub struct Carrier {
    /// Outlets.
    pub outlets: Vec<Outlet>,
    /// Accounts of every role (one print station per outlet, one integration, auditor and admin).
    pub accounts: Vec<SimAccount>,
    /// Merchants.
    pub merchants: Vec<MerchantId>,
    /// Customers, with the index of their home outlet.
    pub customers: Vec<(Party, usize)>,
    seed: u64,
}

/// A synthetic name: a common surname and given-name characters, as the country's names are distributed
/// (nobody's real name is used).
pub fn synthetic_name(rng: &mut impl Rng) -> String {
    format!(
        "{}{}",
        SURNAMES[rng.gen_range(0..SURNAMES.len())],
        GIVEN[rng.gen_range(0..GIVEN.len())]
    )
}

/// A synthetic mobile number on a valid operator prefix.
pub fn synthetic_phone(rng: &mut impl Rng) -> String {
    format!(
        "{}{:08}",
        MOBILE_PREFIXES[rng.gen_range(0..MOBILE_PREFIXES.len())],
        rng.gen_range(0..100_000_000u32)
    )
}

fn party(rng: &mut StdRng, region: &(String, String, String)) -> Party {
    Party {
        name: synthetic_name(rng),
        phone: synthetic_phone(rng),
        address: Address {
            province: region.0.clone(),
            city: region.1.clone(),
            district: region.2.clone(),
            detail: format!(
                "{}{}号{}栋{}室",
                STREETS[rng.gen_range(0..STREETS.len())],
                rng.gen_range(1..400),
                rng.gen_range(1..30),
                rng.gen_range(101..2800)
            ),
        },
    }
}

/// `count` one-off synthetic waybills from `seed`, for canaries: realistic senders and recipients (names, mobile
/// numbers, addresses of the carrier's regions), numbered from the top of the serial range (`YT9…`), where a
/// carrier's own numbering should not reach (reserve it). Merchant and outlets are placeholders (`M000`,
/// `O000`) for whoever plants them to route.
pub fn one_off_waybills(seed: u64, count: usize) -> Vec<NewWaybill> {
    let mut rng = StdRng::seed_from_u64(seed);
    let first = rng.gen_range(9_000_000_000_000..9_999_999_000_000u64);
    let placeholder_outlet = OutletId::parse("O000").expect("valid");
    let region = |rng: &mut StdRng| {
        let (p, c, ds) = REGIONS[rng.gen_range(0..REGIONS.len())];
        let d = ds[rng.gen_range(0..ds.len())];
        (p.to_owned(), c.to_owned(), d.to_owned())
    };
    (0..count as u64)
        .map(|i| {
            let (from, to) = (region(&mut rng), region(&mut rng));
            NewWaybill {
                waybill_no: WaybillNo::parse(&waybill_no(first + i)).expect("valid"),
                merchant: MerchantId::parse("M000").expect("valid"),
                origin_outlet: placeholder_outlet.clone(),
                destination_outlet: placeholder_outlet.clone(),
                sender: party(&mut rng, &from),
                recipient: party(&mut rng, &to),
                items: ITEMS[rng.gen_range(0..ITEMS.len())].to_owned(),
            }
        })
        .collect()
}

impl Carrier {
    /// Generates a carrier.
    pub fn generate(spec: CarrierSpec) -> Carrier {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        // Outlets go round the cities first, so that even a small carrier spans several provinces.
        let outlets: Vec<Outlet> = (0..spec.outlets)
            .map(|i| {
                let (p, c, ds) = REGIONS[i % REGIONS.len()];
                let d = ds[(i / REGIONS.len()) % ds.len()];
                Outlet {
                    id: OutletId::parse(&format!("O{:03}", i + 1))
                        .expect("generated ids are valid"),
                    region: (p.to_owned(), c.to_owned(), d.to_owned()),
                }
            })
            .collect();
        let merchants: Vec<MerchantId> = (0..spec.merchants)
            .map(|i| MerchantId::parse(&format!("M{:03}", i + 1)).expect("valid"))
            .collect();
        let mut accounts = Vec::new();
        for o in &outlets {
            for c in 0..spec.couriers_per_outlet {
                accounts.push(SimAccount {
                    id: format!("C{}{:02}", &o.id.as_str()[1..], c + 1),
                    role: Role::Courier,
                    outlet: Some(o.id.to_string()),
                    merchant: None,
                });
            }
            for s in 0..spec.staff_per_outlet {
                accounts.push(SimAccount {
                    id: format!("S{}{:02}", &o.id.as_str()[1..], s + 1),
                    role: Role::OutletStaff,
                    outlet: Some(o.id.to_string()),
                    merchant: None,
                });
            }
            accounts.push(SimAccount {
                id: format!("P{}", &o.id.as_str()[1..]),
                role: Role::PrintStation,
                outlet: Some(o.id.to_string()),
                merchant: None,
            });
        }
        for m in &merchants {
            accounts.push(SimAccount {
                id: format!("U{}", &m.as_str()[1..]),
                role: Role::Merchant,
                outlet: None,
                merchant: Some(m.to_string()),
            });
        }
        for k in 0..spec.cs_agents {
            accounts.push(SimAccount {
                id: format!("K{:03}", k + 1),
                role: Role::CustomerService,
                outlet: None,
                merchant: None,
            });
        }
        for (id, role) in [
            ("I001", Role::Integration),
            ("A001", Role::Auditor),
            ("root", Role::Admin),
        ] {
            accounts.push(SimAccount {
                id: id.into(),
                role,
                outlet: None,
                merchant: None,
            });
        }
        let customers = (0..spec.customers)
            .map(|_| {
                let home = rng.gen_range(0..outlets.len().max(1));
                (party(&mut rng, &outlets[home].region), home)
            })
            .collect();
        Carrier {
            outlets,
            accounts,
            merchants,
            customers,
            seed: spec.seed,
        }
    }

    /// `n` waybills numbered from `first`, deterministic for the carrier's seed and `first`. Each goes from a
    /// merchant's outlet to the outlet serving the recipient's district.
    pub fn waybills(&self, first: u64, n: usize) -> Vec<NewWaybill> {
        let mut rng = StdRng::seed_from_u64(self.seed ^ first.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        (0..n as u64)
            .map(|i| {
                let m = rng.gen_range(0..self.merchants.len());
                let origin = m % self.outlets.len();
                let (recipient, home) = &self.customers[rng.gen_range(0..self.customers.len())];
                NewWaybill {
                    waybill_no: WaybillNo::parse(&waybill_no(first + i)).expect("valid"),
                    merchant: self.merchants[m].clone(),
                    origin_outlet: self.outlets[origin].id.clone(),
                    destination_outlet: self.outlets[*home].id.clone(),
                    sender: party(&mut rng, &self.outlets[origin].region),
                    recipient: recipient.clone(),
                    items: ITEMS[rng.gen_range(0..ITEMS.len())].to_owned(),
                }
            })
            .collect()
    }

    /// The first account with this role (and outlet, when given).
    pub fn account(&self, role: Role, outlet: Option<&OutletId>) -> Option<&SimAccount> {
        self.accounts.iter().find(|a| {
            a.role == role && outlet.is_none_or(|o| a.outlet.as_deref() == Some(o.as_str()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_off_waybills_are_valid_distinct_and_out_of_the_normal_range() {
        let a = one_off_waybills(1, 50);
        assert_eq!(a.len(), 50);
        let nos: std::collections::HashSet<_> = a.iter().map(|w| w.waybill_no.clone()).collect();
        assert_eq!(nos.len(), 50);
        assert!(a
            .iter()
            .all(|w| serial_of(w.waybill_no.as_str()).is_some_and(|s| s >= 9_000_000_000_000)));
        assert!(a.iter().all(|w| w.clone().validated().is_ok()));
        assert_ne!(one_off_waybills(2, 1)[0].waybill_no, a[0].waybill_no);
    }

    #[test]
    fn deterministic_and_valid() {
        let c = Carrier::generate(CarrierSpec {
            customers: 500,
            ..CarrierSpec::default()
        });
        assert!(c.outlets.len() >= 50);
        assert!(c.accounts.len() >= 500);
        let a = c.waybills(1, 50);
        let b = c.waybills(1, 50);
        assert_eq!(a, b);
        for w in a {
            w.validated().unwrap();
        }
        let ids: std::collections::HashSet<_> = c.accounts.iter().map(|a| &a.id).collect();
        assert_eq!(ids.len(), c.accounts.len(), "account ids are unique");
    }
}
