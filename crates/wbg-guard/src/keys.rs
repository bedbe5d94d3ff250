//! Where the keys live: a key directory outside the data directory (or environment variables), holding the
//! vault's master key and the audit log's Ed25519 signing key.
use crate::GuardError;
use std::path::{Path, PathBuf};
use wbg_audit::note::NoteSigner;
use wbg_vault::{KeySource, MasterKey};

/// Master key file name inside the key directory.
pub const MASTER_KEY_FILE: &str = "master.key";
/// Audit signing key file name inside the key directory.
pub const AUDIT_KEY_FILE: &str = "audit-signing.key";
/// The next master key while a rotation is under way; it replaces [`MASTER_KEY_FILE`] once the store's keys are
/// re-wrapped under it.
pub const NEXT_MASTER_KEY_FILE: &str = "master.key.next";
/// Environment variable that may carry the audit signing key (`PRIVATE+KEY+…`).
pub const AUDIT_KEY_ENV: &str = "WBGUARD_AUDIT_KEY";

/// How the guard gets its keys.
#[derive(Debug)]
pub enum KeyConfig {
    /// From a key directory (created on first run when allowed), with environment variables taking precedence.
    Dir(PathBuf),
    /// Given directly (tests, benchmarks).
    Given {
        /// The master key.
        master: MasterKey,
        /// The audit signing key; its name must be the log's origin. `None`: a fresh key for this run.
        signer: Option<Box<NoteSigner>>,
    },
}

/// The default key directory for a store: `$WBGUARD_KEY_DIR`, else `$XDG_CONFIG_HOME/wbguard/keys/<store id>`,
/// else `~/.config/wbguard/keys/<store id>`. Never inside the data directory.
pub fn default_key_dir(store_id: &str) -> PathBuf {
    if let Some(d) = std::env::var_os("WBGUARD_KEY_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("/etc"));
    base.join("wbguard").join("keys").join(store_id)
}

/// `p` as the file system resolves it: the deepest part that exists canonicalized (symlinks followed, `..`
/// resolved), the rest appended. Comparing path strings let a symlink, or a path not created yet, through.
fn resolved(p: &Path) -> PathBuf {
    let p = if p.is_absolute() {
        p.to_owned()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_owned())
    };
    let mut rest = Vec::new();
    let mut base = p.as_path();
    loop {
        if let Ok(c) = std::fs::canonicalize(base) {
            return rest.iter().rev().fold(c, |acc, part| acc.join(part));
        }
        match (base.parent(), base.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                base = parent;
            }
            _ => return p,
        }
    }
}

/// Refuses a key directory inside the data directory, or a data directory inside the key directory: keys beside
/// the data they protect protect nothing (a copy of one directory would carry both).
pub(crate) fn check_outside(key_dir: &Path, data_dir: &Path) -> Result<(), GuardError> {
    let (k, d) = (resolved(key_dir), resolved(data_dir));
    if k.starts_with(&d) || d.starts_with(&k) {
        return Err(GuardError::Config(format!(
            "the key directory {} and the data directory {} nest; keep keys apart from the data they protect",
            k.display(),
            d.display()
        )));
    }
    Ok(())
}

/// Loads (or creates) the master key from the key directory.
pub(crate) fn master_key(dir: &Path, create: bool) -> Result<(MasterKey, KeySource), GuardError> {
    MasterKey::load_or_create(&dir.join(MASTER_KEY_FILE), create)
        .map_err(|e| GuardError::setup("keys", e))
}

/// Loads (or creates) the audit signing key named `origin`; `true` when it was created now.
pub(crate) fn audit_signer(
    dir: &Path,
    origin: &str,
    create: bool,
) -> Result<(NoteSigner, bool), GuardError> {
    let cfg = |e: String| GuardError::Config(e);
    if let Ok(text) = std::env::var(AUDIT_KEY_ENV) {
        return Ok((
            NoteSigner::from_private_text(&text).map_err(|e| cfg(e.to_string()))?,
            false,
        ));
    }
    let path = dir.join(AUDIT_KEY_FILE);
    match wbg_vault::read_secret(&path).map_err(|e| cfg(e.to_string()))? {
        Some(text) => Ok((
            NoteSigner::from_private_text(&text)
                .map_err(|e| cfg(format!("{}: {e}", path.display())))?,
            false,
        )),
        None if create => {
            let signer = NoteSigner::generate(origin).map_err(|e| cfg(e.to_string()))?;
            wbg_vault::create_secret(&path, &format!("{}\n", signer.to_private_text()))
                .map_err(|e| cfg(e.to_string()))?;
            Ok((signer, true))
        }
        None => Err(cfg(format!(
            "audit signing key {} does not exist",
            path.display()
        ))),
    }
}

/// The next master key of a rotation that re-wrapped the store's keys but did not get to replace the key file
/// (`dir/master.key.next`), if there is one.
pub(crate) fn pending_rotation(dir: &Path) -> Result<Option<MasterKey>, GuardError> {
    MasterKey::load_file(&dir.join(NEXT_MASTER_KEY_FILE))
        .map_err(|e| GuardError::setup("keys (a rotation's next master key)", e))
}

/// Makes the next master key the master key: one rename, so the directory holds the old key or the new one,
/// never neither.
pub fn finish_rotation(dir: &Path) -> Result<(), GuardError> {
    std::fs::rename(dir.join(NEXT_MASTER_KEY_FILE), dir.join(MASTER_KEY_FILE)).map_err(|e| {
        GuardError::Config(format!(
            "cannot move the new master key into place in {}: {e}",
            dir.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_refused_either_way_and_through_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let keys = root.path().join("keys");
        assert!(check_outside(&keys, &data).is_ok());
        assert!(check_outside(&data.join("keys"), &data).is_err());
        // The data directory inside the key directory.
        assert!(check_outside(&keys, &keys.join("data")).is_err());
        // A key directory (not created yet) under a symlink that points into the data directory.
        #[cfg(unix)]
        {
            let link = root.path().join("innocent");
            std::os::unix::fs::symlink(&data, &link).unwrap();
            assert!(check_outside(&link.join("keys"), &data).is_err());
            assert!(check_outside(&link, &data).is_err());
        }
        // `..` does not hide nesting either.
        assert!(check_outside(&data.join("x/../keys"), &data).is_err());
    }
}
