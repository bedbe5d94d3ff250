//! C2SP `signed-note` with Ed25519: signer and verifier keys in their text forms, signing, verification.
//!
//! - verifier key: `<name>+<8 hex digits of key hash>+<base64(0x01 ‖ public key)>`
//! - signer key:   `PRIVATE+KEY+<name>+<8 hex digits>+<base64(0x01 ‖ seed)>`
//! - key hash: the first 4 bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)
//! - note: the text (ending in a newline), a blank line, then lines `— <name> <base64(key hash ‖ signature)>`
use crate::AuditError;
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

const ALG_ED25519: u8 = 0x01;
const DASH: &str = "\u{2014} ";

fn check_name(name: &str) -> Result<(), AuditError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(AuditError::malformed(
            "key name",
            "must be non-empty, without spaces or '+'",
        ));
    }
    Ok(())
}

fn key_hash(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// Signs notes with an Ed25519 key under a name.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({})", self.name)
    }
}

impl NoteSigner {
    /// A new random key under `name`.
    pub fn generate(name: &str) -> Result<NoteSigner, AuditError> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let key = SigningKey::from_bytes(&seed);
        seed.zeroize();
        Ok(NoteSigner {
            name: name.to_owned(),
            key,
        })
    }

    /// Parses the `PRIVATE+KEY+…` text form.
    pub fn from_private_text(text: &str) -> Result<NoteSigner, AuditError> {
        let bad = |why: &str| AuditError::malformed("signer key", why.to_owned());
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("must start with PRIVATE+KEY+"))?;
        let mut parts = rest.splitn(3, '+');
        let (name, hash_hex, b64) = match (parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(h), Some(b)) => (n, h, b),
            _ => return Err(bad("must be PRIVATE+KEY+name+hash+key")),
        };
        check_name(name)?;
        let mut raw = B64.decode(b64).map_err(|_| bad("key is not base64"))?;
        if raw.len() != 33 || raw[0] != ALG_ED25519 {
            raw.zeroize();
            return Err(bad("key must be an Ed25519 seed"));
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&raw[1..]);
        raw.zeroize();
        let key = SigningKey::from_bytes(&seed);
        seed.zeroize();
        let signer = NoteSigner {
            name: name.to_owned(),
            key,
        };
        if hex::encode(key_hash(name, signer.key.verifying_key().as_bytes())) != hash_hex {
            return Err(bad("key hash does not match"));
        }
        Ok(signer)
    }

    /// The `PRIVATE+KEY+…` text form (secret: store it with owner-only permissions).
    pub fn to_private_text(&self) -> String {
        let public = self.key.verifying_key().to_bytes();
        let mut raw = [0u8; 33];
        raw[0] = ALG_ED25519;
        raw[1..].copy_from_slice(self.key.as_bytes());
        let text = format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex::encode(key_hash(&self.name, &public)),
            B64.encode(raw)
        );
        raw.zeroize();
        text
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` (which must end in a newline) and returns the whole note.
    pub fn sign(&self, text: &str) -> Result<String, AuditError> {
        if !text.ends_with('\n') {
            return Err(AuditError::malformed(
                "note",
                "text must end with a newline",
            ));
        }
        let sig = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&key_hash(&self.name, self.key.verifying_key().as_bytes()));
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n{DASH}{} {}\n",
            self.name,
            B64.encode(blob)
        ))
    }
}

/// Verifies notes signed by one Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses the `name+hash+base64` verifier key form.
    pub fn from_text(text: &str) -> Result<NoteVerifier, AuditError> {
        let bad = |why: &str| AuditError::malformed("verifier key", why.to_owned());
        let mut parts = text.trim().splitn(3, '+');
        let (name, hash_hex, b64) = match (parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(h), Some(b)) => (n, h, b),
            _ => return Err(bad("must be name+hash+key")),
        };
        check_name(name)?;
        let raw = B64.decode(b64).map_err(|_| bad("key is not base64"))?;
        if raw.len() != 33 || raw[0] != ALG_ED25519 {
            return Err(bad("not an Ed25519 key"));
        }
        let mut public = [0u8; 32];
        public.copy_from_slice(&raw[1..]);
        if hex::encode(key_hash(name, &public)) != hash_hex {
            return Err(bad("key hash does not match"));
        }
        let key =
            VerifyingKey::from_bytes(&public).map_err(|_| bad("not a valid Ed25519 point"))?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            key,
        })
    }

    /// The `name+hash+base64` text form.
    pub fn to_text(&self) -> String {
        let public = self.key.to_bytes();
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(&public);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(key_hash(&self.name, &public)),
            B64.encode(raw)
        )
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks that `note` carries a valid signature by this key and returns its text (without signatures).
    /// Signatures by other keys are ignored; one by this key's name that does not verify is an error.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, AuditError> {
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| AuditError::malformed("note", "no blank line before the signatures"))?;
        let text = &note[..split + 1];
        let hash = key_hash(&self.name, self.key.as_bytes());
        let mut found = false;
        for line in note[split + 2..].lines() {
            let rest = line.strip_prefix(DASH).ok_or_else(|| {
                AuditError::malformed("note", "signature line must start with an em dash")
            })?;
            let (name, b64) = rest.split_once(' ').ok_or_else(|| {
                AuditError::malformed("note", "signature line must be name and signature")
            })?;
            if name != self.name {
                continue;
            }
            let blob = B64
                .decode(b64)
                .map_err(|_| AuditError::malformed("note", "signature is not base64"))?;
            if blob.len() != 68 || blob[..4] != hash {
                continue;
            }
            let sig = Signature::from_slice(&blob[4..])
                .map_err(|_| AuditError::Signature("bad signature bytes".into()))?;
            self.key.verify(text.as_bytes(), &sig).map_err(|_| {
                AuditError::Signature(format!("signature by {} does not verify", self.name))
            })?;
            found = true;
        }
        if found {
            Ok(text)
        } else {
            Err(AuditError::Signature(format!(
                "no signature by {}",
                self.name
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_open_round_trip_and_tamper() {
        let s = NoteSigner::generate("example.com/log").unwrap();
        let note = s.sign("hello\nworld\n").unwrap();
        assert!(note.contains("\n\n\u{2014} example.com/log "));
        let v = NoteVerifier::from_text(&s.verifier().to_text()).unwrap();
        assert_eq!(v.open(&note).unwrap(), "hello\nworld\n");
        let tampered = note.replace("world", "w0rld");
        assert!(v.open(&tampered).is_err());
        let other = NoteSigner::generate("example.com/log").unwrap().verifier();
        assert!(other.open(&note).is_err());
    }

    #[test]
    fn key_text_forms_round_trip() {
        let s = NoteSigner::generate("wbguard.local/audit/abc").unwrap();
        let again = NoteSigner::from_private_text(&s.to_private_text()).unwrap();
        assert_eq!(again.verifier(), s.verifier());
        let vk = s.verifier().to_text();
        assert!(vk.starts_with("wbguard.local/audit/abc+"));
        assert_eq!(vk.split('+').nth(1).unwrap().len(), 8);
        assert!(NoteVerifier::from_text("x+00000000+AAAA").is_err());
        assert!(NoteSigner::generate("has space").is_err());
    }

    /// The example key and note from the C2SP signed-note specification (golang.org/x/mod/sumdb/note tests).
    #[test]
    fn verifies_the_reference_example() {
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let note = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        let v = NoteVerifier::from_text(vkey).unwrap();
        assert!(v.open(note).unwrap().starts_with("If you think"));
        // Ed25519 is deterministic: our signer must reproduce the reference note byte for byte.
        let skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let s = NoteSigner::from_private_text(skey).unwrap();
        assert_eq!(s.verifier().to_text(), vkey);
        let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        assert_eq!(s.sign(text).unwrap(), note);
    }
}
