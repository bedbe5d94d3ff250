//! Helpers shared by the guard's behaviour tests.

/// Whether any file directly in `dir` holds `needle` anywhere in its bytes (the store's database, its
/// write-ahead log and shared memory, the forensics index).
pub fn files_hold(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|f| {
        let bytes = std::fs::read(f.unwrap().path()).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}
