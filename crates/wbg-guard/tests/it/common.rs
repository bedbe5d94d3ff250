//! Helpers shared by the guard's behaviour tests (each module uses some of them).

/// Whether any file directly in `dir` holds `needle` anywhere in its bytes (the store's database, its
/// write-ahead log and shared memory, the forensics index).
pub fn files_hold(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|f| {
        let bytes = std::fs::read(f.unwrap().path()).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

/// A risk hook that lets the first `allow` accesses through, then refuses; it records whose access, for which
/// purpose, it was shown.
pub struct Metered {
    pub allow: usize,
    pub seen: std::sync::Mutex<Vec<(String, String)>>,
}

impl Metered {
    pub fn allowing(allow: usize) -> std::sync::Arc<Metered> {
        std::sync::Arc::new(Metered {
            allow,
            seen: Default::default(),
        })
    }
}

impl wbg_guard::RiskHook for Metered {
    fn assess(&self, a: &wbg_guard::Access<'_>) -> wbg_guard::RiskVerdict {
        let mut seen = self.seen.lock().unwrap();
        seen.push((a.account.id.to_string(), a.purpose.as_str().to_owned()));
        if seen.len() <= self.allow {
            wbg_guard::RiskVerdict::allow()
        } else {
            wbg_guard::RiskVerdict {
                action: wbg_guard::RiskAction::Refuse,
                alert: None,
            }
        }
    }
}
