//! The master key: where it comes from, how it is created, and its public key id.
use crate::VaultError;
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Environment variable that may carry the master key (base64 of 32 bytes); it wins over any key file.
pub const MASTER_KEY_ENV: &str = "WBGUARD_MASTER_KEY";

/// A 256-bit master key. Zeroed on drop; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(id={})", self.key_id())
    }
}

/// Where a master key came from, for the operator's information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The environment variable.
    Env,
    /// An existing key file.
    File(PathBuf),
    /// A key file created just now.
    Created(PathBuf),
    /// Handed over by the caller (tests, benchmarks, embedding programs).
    Supplied,
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> MasterKey {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        MasterKey(k)
    }

    /// Wraps raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(bytes)
    }

    /// Parses the base64 text form (the key file's content, or the environment variable).
    pub fn from_base64(text: &str) -> Result<MasterKey, VaultError> {
        let mut raw = B64
            .decode(text.trim())
            .map_err(|_| VaultError::MasterKey("not valid base64".into()))?;
        if raw.len() != 32 {
            raw.zeroize();
            return Err(VaultError::MasterKey(
                "must decode to exactly 32 bytes".into(),
            ));
        }
        let mut k = [0u8; 32];
        k.copy_from_slice(&raw);
        raw.zeroize();
        Ok(MasterKey(k))
    }

    /// The key's bytes, for the ciphers that use it.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A public identifier of the key (HMAC of a fixed label, 8 bytes hex): safe to store and print, and lets the
    /// store detect that it was opened with another key.
    pub fn key_id(&self) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"wbguard master key id v1");
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    /// A fresh key written to `path` (mode 0600; an existing file is not overwritten).
    pub fn create_file(path: &Path) -> Result<MasterKey, VaultError> {
        let key = MasterKey::generate();
        create_secret(path, &format!("{}\n", B64.encode(key.0)))?;
        Ok(key)
    }

    /// The key in file `path`, ignoring the environment; `None` when there is no such file.
    pub fn load_file(path: &Path) -> Result<Option<MasterKey>, VaultError> {
        read_secret(path)?
            .map(|text| MasterKey::from_base64(&text))
            .transpose()
    }

    /// Loads the master key: from `WBGUARD_MASTER_KEY` when set, else from `path`; when neither exists and
    /// `create` is true, creates `path` with a new key (mode 0600, parent directory 0700).
    pub fn load_or_create(path: &Path, create: bool) -> Result<(MasterKey, KeySource), VaultError> {
        if let Ok(v) = std::env::var(MASTER_KEY_ENV) {
            return Ok((MasterKey::from_base64(&v)?, KeySource::Env));
        }
        match read_secret(path)? {
            Some(text) => Ok((
                MasterKey::from_base64(&text)?,
                KeySource::File(path.to_owned()),
            )),
            None if create => {
                let key = MasterKey::generate();
                create_secret(path, &format!("{}\n", B64.encode(key.0)))?;
                Ok((key, KeySource::Created(path.to_owned())))
            }
            None => Err(VaultError::MasterKey(format!(
                "key file {} does not exist",
                path.display()
            ))),
        }
    }
}

/// Reads a secret file; `None` when it does not exist. Refuses a file that group or others can read.
pub fn read_secret(path: &Path) -> Result<Option<String>, VaultError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            check_private(path)?;
            Ok(Some(text))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(VaultError::KeyFile {
            what: format!("cannot read key file {}", path.display()),
            source: e,
        }),
    }
}

/// Writes a secret file readable by its owner only, creating parent directories with mode 0700.
/// Refuses to overwrite an existing file.
pub fn create_secret(path: &Path, content: &str) -> Result<(), VaultError> {
    use std::io::Write;
    let err = |e: std::io::Error| VaultError::KeyFile {
        what: format!("cannot create {}", path.display()),
        source: e,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(content.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)
}

/// Refuses a key file that others can read: a leaked master key undoes the vault.
fn check_private(path: &Path) -> Result<(), VaultError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| VaultError::KeyFile {
            what: format!("cannot stat {}", path.display()),
            source: e,
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(VaultError::MasterKey(format!(
                "{} is readable by group or others; run chmod 600 on it",
                path.display()
            )));
        }
    }
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_private_key_file_then_reloads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let (k1, src) = MasterKey::load_or_create(&path, true).unwrap();
        assert_eq!(src, KeySource::Created(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let (k2, src) = MasterKey::load_or_create(&path, false).unwrap();
        assert_eq!(src, KeySource::File(path.clone()));
        assert_eq!(k1.key_id(), k2.key_id());
    }

    #[test]
    fn refuses_world_readable_key_and_missing_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        assert!(MasterKey::load_or_create(&path, false).is_err());
        std::fs::write(&path, B64.encode([7u8; 32])).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(MasterKey::load_or_create(&path, false).is_err());
        }
    }

    #[test]
    fn a_key_file_that_cannot_be_made_keeps_the_file_system_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        create_secret(&path, "x").unwrap();
        let e = create_secret(&path, "y").expect_err("never overwritten");
        let source = std::error::Error::source(&e).expect("the io::Error");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("an io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(
            e.to_string().starts_with("master key: cannot create "),
            "{e}"
        );
    }

    #[test]
    fn debug_shows_id_not_key() {
        let k = MasterKey::from_bytes([9u8; 32]);
        let s = format!("{k:?}");
        assert!(s.contains(&k.key_id()));
        assert!(!s.contains(&B64.encode([9u8; 32])));
        assert!(MasterKey::from_base64("AAAA").is_err());
    }
}
