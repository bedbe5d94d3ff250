//! The vault proper: data keys per bucket and field group (cached unwrapped in memory), sealing and opening of
//! fields.
use crate::{
    BlindIndex, BlindKind, Field, FieldGroup, KeyStoreError, MasterKey, SealedFields, VaultError,
};
use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use wbg_core::{Millis, NewWaybill, WaybillNo};
use zeroize::Zeroize;

const NONCE: usize = 12;

/// One bucket's unwrapped data keys, by [`FieldGroup`] index.
#[derive(Clone, Default)]
struct BucketKeys([Option<Arc<Aes256Gcm>>; 4]);

/// Where wrapped keys are kept (beside the data; useless without the master key).
pub trait WrappedKeyStore: Send + Sync {
    /// The wrapped key stored under `id`, if any.
    fn get_wrapped_key(&self, id: &str) -> Result<Option<Vec<u8>>, KeyStoreError>;
    /// Stores `wrapped` under `id` unless a key is already there, and returns what is stored afterwards
    /// (so two writers racing to create a bucket's key agree on one). `wrapped` begins with the 8-byte id of the
    /// master key that wraps it; a store shared by several processes refuses a new key whose id is not its other
    /// keys' (`wbg_store::Keys::put_wrapped_key_if_absent`: a process left behind by a master-key rotation).
    fn put_wrapped_key_if_absent(&self, id: &str, wrapped: &[u8])
        -> Result<Vec<u8>, KeyStoreError>;
}

/// Wrapped keys kept in memory only: for tests, benchmarks and tools that need a vault without a store.
#[derive(Debug, Default)]
pub struct MemoryKeyStore(std::sync::Mutex<HashMap<String, Vec<u8>>>);

impl MemoryKeyStore {
    /// Destroys the key stored under `id` (as retention destroys a bucket's key); `true` if there was one.
    pub fn remove(&self, id: &str) -> bool {
        self.0
            .lock()
            .map(|mut m| m.remove(id).is_some())
            .unwrap_or(false)
    }
}

impl MemoryKeyStore {
    /// Every stored key, by id.
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        self.0
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Replaces the key stored under `id`.
    pub fn replace(&self, id: &str, wrapped: Vec<u8>) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(id.to_owned(), wrapped);
        }
    }
}

impl WrappedKeyStore for MemoryKeyStore {
    fn get_wrapped_key(&self, id: &str) -> Result<Option<Vec<u8>>, KeyStoreError> {
        let m = self.0.lock().map_err(|_| "key map lock poisoned")?;
        Ok(m.get(id).cloned())
    }
    fn put_wrapped_key_if_absent(
        &self,
        id: &str,
        wrapped: &[u8],
    ) -> Result<Vec<u8>, KeyStoreError> {
        let mut m = self.0.lock().map_err(|_| "key map lock poisoned")?;
        Ok(m.entry(id.to_owned())
            .or_insert_with(|| wrapped.to_vec())
            .clone())
    }
}

/// Blind-index tokens of a waybill: recipient's phone, name, address, then the sender's.
pub type BlindTokens = Vec<(BlindKind, [u8; 16])>;

/// The retention bucket of a moment: its day number since the epoch (UTC).
pub fn bucket_of(at: Millis) -> i64 {
    at.div_euclid(86_400_000)
}

/// Seals and opens personal fields; holds the master key and the unwrapped data keys.
pub struct Vault {
    master: MasterKey,
    master_id: [u8; 8],
    blind: BlindIndex,
    /// Each bucket's unwrapped keys, one slot per group (a group not loaded yet, or shredded, is `None`); one
    /// `Arc` per bucket so that sealing a waybill takes one reference, not one per group.
    data_keys: RwLock<HashMap<i64, Arc<BucketKeys>>>,
    /// The key of opaque tokens (label QR codes), loaded on first use.
    token_key: std::sync::OnceLock<Arc<Aes256Gcm>>,
    store: Arc<dyn WrappedKeyStore>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

fn id_bytes(master: &MasterKey) -> [u8; 8] {
    let mut out = [0u8; 8];
    if let Ok(v) = hex::decode(master.key_id()) {
        out.copy_from_slice(&v[..8]);
    }
    out
}

impl Vault {
    /// Opens the vault over a key store: loads (or, on a new store, creates) the blind-index key. Fails with
    /// [`VaultError::WrongMasterKey`] when the store's keys were wrapped under another master key.
    pub fn open(master: MasterKey, store: Arc<dyn WrappedKeyStore>) -> Result<Vault, VaultError> {
        let master_id = id_bytes(&master);
        let mut vault = Vault {
            master,
            master_id,
            blind: BlindIndex::new([0u8; 32]),
            data_keys: RwLock::new(HashMap::new()),
            token_key: std::sync::OnceLock::new(),
            store,
        };
        let mut raw = vault.key_material("index", true)?;
        vault.blind = BlindIndex::new(raw);
        raw.zeroize();
        Ok(vault)
    }

    /// The blind-index functions.
    pub fn blind(&self) -> &BlindIndex {
        &self.blind
    }

    /// The master key's public id.
    pub fn master_key_id(&self) -> String {
        hex::encode(self.master_id)
    }

    fn wrap_cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.master.bytes().into())
    }

    fn wrap_aad(id: &str) -> Vec<u8> {
        [b"wbguard/key/v1\0".as_slice(), id.as_bytes()].concat()
    }

    /// `raw` wrapped under `master` for the key id `id`: master key id, nonce, AES-256-GCM ciphertext.
    fn wrap(master: &MasterKey, id: &str, raw: &[u8; 32]) -> Result<Vec<u8>, VaultError> {
        let sealed = seal(
            &Aes256Gcm::new(master.bytes().into()),
            raw,
            &Self::wrap_aad(id),
        )
        .ok_or_else(|| VaultError::Decrypt {
            what: format!("data key {id}"),
        })?;
        Ok([&id_bytes(master)[..], &sealed].concat())
    }

    /// The key `wrapped` holds, checked to be wrapped under this vault's master key for `id`.
    fn unwrap(&self, id: &str, wrapped: &[u8]) -> Result<[u8; 32], VaultError> {
        if wrapped.len() != 8 + NONCE + 32 + 16 {
            return Err(VaultError::Malformed("wrapped key length"));
        }
        if wrapped[..8] != self.master_id {
            return Err(VaultError::WrongMasterKey {
                expected: hex::encode(&wrapped[..8]),
                actual: hex::encode(self.master_id),
            });
        }
        let mut plain =
            open(&self.wrap_cipher(), &wrapped[8..], &Self::wrap_aad(id)).ok_or_else(|| {
                VaultError::Decrypt {
                    what: format!("data key {id}"),
                }
            })?;
        let mut out = [0u8; 32];
        out.copy_from_slice(&plain);
        plain.zeroize();
        Ok(out)
    }

    /// Unwraps the key stored under `id`; creates and stores a fresh one when absent and `create` is set.
    fn key_material(&self, id: &str, create: bool) -> Result<[u8; 32], VaultError> {
        let wrapped = match self.store.get_wrapped_key(id).map_err(VaultError::Store)? {
            Some(w) => w,
            None if create => {
                let mut fresh = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut fresh);
                let blob = Self::wrap(&self.master, id, &fresh);
                fresh.zeroize();
                self.store
                    .put_wrapped_key_if_absent(id, &blob?)
                    .map_err(VaultError::Store)?
            }
            None => {
                return Err(match FieldGroup::of_key_id(id) {
                    Some((bucket, _)) => VaultError::Shredded(bucket),
                    None => VaultError::Keys(format!("key {id} is missing")),
                })
            }
        };
        self.unwrap(id, &wrapped)
    }

    /// The key stored under `id` as `wrapped` (under this vault's master key), wrapped under `new` instead. The
    /// key itself does not change, so nothing it sealed needs re-encrypting: this is how the master key rotates.
    pub fn rewrap(&self, id: &str, wrapped: &[u8], new: &MasterKey) -> Result<Vec<u8>, VaultError> {
        let mut raw = self.unwrap(id, wrapped)?;
        let out = Self::wrap(new, id, &raw);
        raw.zeroize();
        out
    }

    /// The keys of `bucket` with `group`'s loaded (made first when absent and `create` is set).
    fn bucket_keys(
        &self,
        bucket: i64,
        group: FieldGroup,
        create: bool,
    ) -> Result<Arc<BucketKeys>, VaultError> {
        if let Some(k) = self.data_keys.read().map_err(|_| poisoned())?.get(&bucket) {
            if k.0[group as usize].is_some() {
                return Ok(k.clone());
            }
        }
        let mut raw = self.key_material(&group.key_id(bucket), create)?;
        let cipher = Arc::new(Aes256Gcm::new((&raw).into()));
        raw.zeroize();
        let mut map = self.data_keys.write().map_err(|_| poisoned())?;
        let mut keys = map.get(&bucket).map(|k| (**k).clone()).unwrap_or_default();
        keys.0[group as usize] = Some(cipher);
        let keys = Arc::new(keys);
        map.insert(bucket, keys.clone());
        Ok(keys)
    }

    /// Every group's data key of `bucket`, loaded (made if need be).
    fn all_keys(&self, bucket: i64) -> Result<Arc<BucketKeys>, VaultError> {
        let mut keys = self.bucket_keys(bucket, FieldGroup::Contact, true)?;
        for g in FieldGroup::ALL {
            if keys.0[g as usize].is_none() {
                keys = self.bucket_keys(bucket, g, true)?;
            }
        }
        Ok(keys)
    }

    /// Loads (creating if needed) the data keys of `bucket`, so that sealing into it afterwards touches no key
    /// store: sealing threads then never wait on a store that a transaction holds.
    pub fn ensure_bucket(&self, bucket: i64) -> Result<(), VaultError> {
        self.all_keys(bucket).map(drop)
    }

    /// Drops a bucket's unwrapped key of `group` from memory (after its wrapped key was destroyed).
    pub fn forget_key(&self, bucket: i64, group: FieldGroup) {
        if let Ok(mut m) = self.data_keys.write() {
            if let Some(k) = m.get(&bucket) {
                let mut keys = (**k).clone();
                keys.0[group as usize] = None;
                m.insert(bucket, Arc::new(keys));
            }
        }
    }

    /// Writes the associated data of a field into `out` (cleared first): `wbguard/field/v1\0<no>\0<field>\0<bucket>`.
    fn aad_into(out: &mut Vec<u8>, no: &WaybillNo, field: Field, bucket: i64) {
        use std::io::Write;
        out.clear();
        out.extend_from_slice(b"wbguard/field/v1\0");
        out.extend_from_slice(no.as_str().as_bytes());
        out.push(0);
        out.extend_from_slice(field.name().as_bytes());
        out.push(0);
        // Writing an integer into a Vec cannot fail.
        let _ = write!(out, "{bucket}");
    }

    /// Seals every personal field of a validated waybill under the data key of its group in `bucket`, and
    /// computes the blind-index tokens of both parties (recipient first).
    pub fn seal(
        &self,
        wb: &NewWaybill,
        bucket: i64,
    ) -> Result<(SealedFields, BlindTokens), VaultError> {
        let keys = self.all_keys(bucket)?;
        let region = |a: &wbg_core::Address| crate::join_region(&a.province, &a.city, &a.district);
        let values: [(Field, std::borrow::Cow<'_, str>); 9] = [
            (Field::SenderName, wb.sender.name.as_str().into()),
            (Field::SenderPhone, wb.sender.phone.as_str().into()),
            (Field::SenderRegion, region(&wb.sender.address).into()),
            (
                Field::SenderDetail,
                wb.sender.address.detail.as_str().into(),
            ),
            (Field::RecipientName, wb.recipient.name.as_str().into()),
            (Field::RecipientPhone, wb.recipient.phone.as_str().into()),
            (Field::RecipientRegion, region(&wb.recipient.address).into()),
            (
                Field::RecipientDetail,
                wb.recipient.address.detail.as_str().into(),
            ),
            (Field::Items, wb.items.as_str().into()),
        ];
        let out = self.seal_values(&wb.waybill_no, bucket, &keys, &values)?;
        let mut blind = Vec::with_capacity(2 * BlindIndex::PER_PARTY + 1);
        blind.extend(self.blind.party(&wb.recipient));
        blind.extend(self.blind.party(&wb.sender));
        // The recipient's last four digits with the number, for the public lookup (after both parties' tokens).
        let phone = &wb.recipient.phone;
        if let Some(t) = phone
            .get(phone.len().saturating_sub(4)..)
            .and_then(|last4| self.blind.track_last4(wb.waybill_no.as_str(), last4))
        {
            blind.push((BlindKind::TrackLast4, t));
        }
        Ok((out, blind))
    }

    /// Seals `values` of waybill `no` under `keys`, the data keys of `bucket` (each group's loaded).
    fn seal_values<V: AsRef<str>>(
        &self,
        no: &WaybillNo,
        bucket: i64,
        keys: &BucketKeys,
        values: &[(Field, V)],
    ) -> Result<SealedFields, VaultError> {
        let key_of = |f: Field| keys.0[f.group() as usize].as_deref();
        let mut out = SealedFields::with_capacity(
            1 + values
                .iter()
                .map(|(_, v)| v.as_ref().len() + 31)
                .sum::<usize>(),
        );
        let mut rng = rand::thread_rng();
        // nonce ‖ ciphertext ‖ tag, built in place in one buffer reused across fields.
        let mut buf = Vec::with_capacity(NONCE + 256);
        let mut aad = Vec::with_capacity(64);
        for (field, value) in values.iter() {
            let mut nonce = [0u8; NONCE];
            rng.fill_bytes(&mut nonce);
            Self::aad_into(&mut aad, no, *field, bucket);
            buf.clear();
            buf.extend_from_slice(&nonce);
            buf.extend_from_slice(value.as_ref().as_bytes());
            let tag = key_of(*field)
                .ok_or_else(|| VaultError::Keys("a data key is not loaded".into()))?
                .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut buf[NONCE..])
                .map_err(|_| VaultError::Decrypt {
                    what: field.name().to_owned(),
                })?;
            buf.extend_from_slice(&tag);
            out.push(*field, &buf);
        }
        Ok(out)
    }

    /// Re-encrypts `fields` of waybill `no` from the data keys of bucket `from` to those of `to` (made if need
    /// be); the fields not named are left behind. How retention carries a parcel still under way out of a day
    /// whose keys are about to be destroyed (every field), and how an erasure moves a person's parcels into a
    /// bucket of their own to destroy (the fields still there). A field that does not open (tampered with, or
    /// its group's key already destroyed) fails the whole call. The plaintexts are zeroed before returning.
    pub fn reseal(
        &self,
        no: &WaybillNo,
        from: i64,
        to: i64,
        sealed: &[u8],
        fields: &[Field],
    ) -> Result<SealedFields, VaultError> {
        let mut opened = self.open_fields(no, from, sealed, fields)?;
        let keys = self.all_keys(to)?;
        let out = self.seal_values(no, to, &keys, &opened);
        for (_, v) in opened.iter_mut() {
            v.zeroize();
        }
        out
    }

    /// Opens exactly the requested fields of one waybill. A field that was tampered with, moved from another
    /// record or field, or whose group's key in the bucket is destroyed fails the whole call.
    pub fn open_fields(
        &self,
        no: &WaybillNo,
        bucket: i64,
        sealed: &[u8],
        fields: &[Field],
    ) -> Result<Vec<(Field, String)>, VaultError> {
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys: Option<Arc<BucketKeys>> = None;
        let mut out = Vec::with_capacity(fields.len());
        let mut aad = Vec::with_capacity(64);
        for &field in fields {
            let body = SealedFields::get(sealed, field)?
                .ok_or_else(|| VaultError::Malformed("field missing"))?;
            if body.len() < NONCE + 16 {
                return Err(VaultError::Malformed("field too short"));
            }
            Self::aad_into(&mut aad, no, field, bucket);
            let g = field.group();
            if keys.as_ref().is_none_or(|k| k.0[g as usize].is_none()) {
                keys = Some(self.bucket_keys(bucket, g, false)?);
            }
            let key = keys
                .as_ref()
                .and_then(|k| k.0[g as usize].as_deref())
                .ok_or_else(|| VaultError::Keys("a data key is not loaded".into()))?;
            let plain = key
                .decrypt(
                    Nonce::from_slice(&body[..NONCE]),
                    Payload {
                        msg: &body[NONCE..],
                        aad: &aad,
                    },
                )
                .map_err(|_| VaultError::Decrypt {
                    what: field.name().to_owned(),
                })?;
            let text = String::from_utf8(plain)
                .map_err(|_| VaultError::Malformed("field is not UTF-8"))?;
            out.push((field, text));
        }
        Ok(out)
    }
}

impl Vault {
    fn token_cipher(&self) -> Result<Arc<Aes256Gcm>, VaultError> {
        if let Some(k) = self.token_key.get() {
            return Ok(k.clone());
        }
        // Two threads racing here both unwrap the one key the store agreed on.
        let mut raw = self.key_material("token", true)?;
        let cipher = Arc::new(Aes256Gcm::new((&raw).into()));
        raw.zeroize();
        Ok(self.token_key.get_or_init(|| cipher).clone())
    }

    fn token_aad(context: &str) -> Vec<u8> {
        [b"wbguard/token/v1\0".as_slice(), context.as_bytes()].concat()
    }

    /// Seals `plain` into an opaque token for `context` (e.g. `label`): AES-256-GCM under the vault's token key
    /// (wrapped by the master key like every other key), with a fresh nonce. Only this vault opens it, and a
    /// token sealed for one context does not open in another.
    pub fn seal_token(&self, context: &str, plain: &[u8]) -> Result<Vec<u8>, VaultError> {
        seal(&*self.token_cipher()?, plain, &Self::token_aad(context)).ok_or_else(|| {
            VaultError::Decrypt {
                what: format!("{context} token"),
            }
        })
    }

    /// Opens a token [`seal_token`](Vault::seal_token) made for `context`; anything else (forged, altered,
    /// truncated, for another context or another store) is [`VaultError::Decrypt`].
    pub fn open_token(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        open(&*self.token_cipher()?, sealed, &Self::token_aad(context)).ok_or_else(|| {
            VaultError::Decrypt {
                what: format!("{context} token"),
            }
        })
    }
}

/// `msg` sealed under `cipher` with `aad`: a fresh random nonce, then the AES-256-GCM ciphertext and tag.
fn seal(cipher: &Aes256Gcm, msg: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let mut nonce = [0u8; NONCE];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg, aad })
        .ok()?;
    Some([&nonce[..], &ct].concat())
}

/// What [`seal`] sealed, if `sealed` is intact and was sealed under `cipher` with `aad`.
fn open(cipher: &Aes256Gcm, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE + 16 {
        return None;
    }
    let (nonce, msg) = sealed.split_at(NONCE);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg, aad })
        .ok()
}

fn poisoned() -> VaultError {
    VaultError::Keys("key cache lock poisoned".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use wbg_core::{Address, MerchantId, OutletId, Party};

    fn waybill(no: &str, name: &str, phone: &str, detail: &str) -> NewWaybill {
        let party = |name: &str, phone: &str| Party {
            name: name.into(),
            phone: phone.into(),
            address: Address {
                province: "浙江省".into(),
                city: "杭州市".into(),
                district: "萧山区".into(),
                detail: detail.into(),
            },
        };
        NewWaybill {
            waybill_no: WaybillNo::parse(no).unwrap(),
            merchant: MerchantId::parse("M1").unwrap(),
            origin_outlet: OutletId::parse("O1").unwrap(),
            destination_outlet: OutletId::parse("O2").unwrap(),
            sender: party("李雷", "13900139000"),
            recipient: party(name, phone),
            items: "书".into(),
        }
        .validated()
        .unwrap()
    }

    fn vault() -> (Vault, Arc<MemoryKeyStore>) {
        let store = Arc::new(MemoryKeyStore::default());
        (
            Vault::open(MasterKey::from_bytes([1u8; 32]), store.clone()).unwrap(),
            store,
        )
    }

    #[test]
    fn a_rewrapped_store_opens_under_the_new_master_key_only() {
        let (v, store) = vault();
        let w = waybill("YT1", "王芳", "13800138000", "文三路1号");
        let (sealed, _) = v.seal(&w, 20_000).unwrap();
        let token = v.seal_token("label", b"YT1").unwrap();
        let new = MasterKey::generate();
        for (id, wrapped) in store.snapshot() {
            let again = v.rewrap(&id, &wrapped, &new).unwrap();
            assert_ne!(again, wrapped);
            store.replace(&id, again);
        }
        let rotated = Vault::open(new, store.clone()).unwrap();
        let opened = rotated
            .open_fields(&w.waybill_no, 20_000, &sealed.0, &[Field::RecipientPhone])
            .unwrap();
        assert_eq!(opened[0].1, "13800138000");
        assert_eq!(rotated.open_token("label", &token).unwrap(), b"YT1");
        assert!(matches!(
            Vault::open(MasterKey::from_bytes([1u8; 32]), store),
            Err(VaultError::WrongMasterKey { .. })
        ));
    }

    #[test]
    fn tokens_open_only_here_and_only_for_their_context() {
        let (v, store) = vault();
        let t = v.seal_token("label", b"YT1").unwrap();
        assert_eq!(v.open_token("label", &t).unwrap(), b"YT1");
        assert_ne!(
            v.seal_token("label", b"YT1").unwrap(),
            t,
            "fresh nonce each time"
        );
        assert!(v.open_token("other", &t).is_err());
        for i in 0..t.len() {
            let mut bad = t.clone();
            bad[i] ^= 1;
            assert!(v.open_token("label", &bad).is_err());
        }
        assert!(v.open_token("label", &t[..20]).is_err());
        // The token key is stored wrapped and survives a reopen with the same master key.
        let again = Vault::open(v.master.clone(), store).unwrap();
        assert_eq!(again.open_token("label", &t).unwrap(), b"YT1");
        let (other, _) = vault();
        assert!(other.open_token("label", &t).is_err());
    }

    #[test]
    fn a_partly_carried_record_says_which_fields_it_has_and_opens_them() {
        let (v, _) = vault();
        let a = waybill("WA", "王芳", "13800138000", "一路1号");
        let (sealed, _) = v.seal(&a, 7).unwrap();
        let all = SealedFields::carried(&sealed.0);
        assert!(Field::ALL.into_iter().all(&all));
        // Carried to bucket 9 without its contact fields (their group's key gone in bucket 7).
        let left = [Field::RecipientRegion, Field::RecipientDetail, Field::Items];
        let moved = v.reseal(&a.waybill_no, 7, 9, &sealed.0, &left).unwrap();
        let carried = SealedFields::carried(&moved.0);
        for f in Field::ALL {
            assert_eq!(carried(f), left.contains(&f), "{f:?}");
        }
        assert_eq!(
            v.open_fields(&a.waybill_no, 9, &moved.0, &left)
                .unwrap()
                .len(),
            3
        );
        // Malformed bytes carry nothing.
        for bad in [&[][..], &[9u8, 1, 0][..], &sealed.0[..sealed.0.len() - 1]] {
            assert!(!Field::ALL.into_iter().any(SealedFields::carried(bad)));
        }
    }

    #[test]
    fn a_field_moved_to_another_record_or_field_fails() {
        let (v, _) = vault();
        let a = waybill("WA", "王芳", "13800138000", "一路1号");
        let b = waybill("WB", "张伟", "13700137000", "二路2号");
        let (sa, _) = v.seal(&a, 7).unwrap();
        let (sb, _) = v.seal(&b, 7).unwrap();
        // Rebuild B's blob with A's recipient phone in it.
        let mut forged = SealedFields::with_capacity(0);
        for f in Field::ALL {
            let src = if f == Field::RecipientPhone { &sa } else { &sb };
            forged.push(f, SealedFields::get(&src.0, f).unwrap().unwrap());
        }
        assert!(v
            .open_fields(&b.waybill_no, 7, &forged.0, &[Field::RecipientName])
            .is_ok());
        let err = v
            .open_fields(&b.waybill_no, 7, &forged.0, &[Field::RecipientPhone])
            .unwrap_err();
        assert!(matches!(err, VaultError::Decrypt { .. }));
        // Same record, field swapped: sender phone bytes put where the recipient phone goes.
        let mut swapped = SealedFields::with_capacity(0);
        for f in Field::ALL {
            let take = if f == Field::RecipientPhone {
                Field::SenderPhone
            } else {
                f
            };
            swapped.push(f, SealedFields::get(&sa.0, take).unwrap().unwrap());
        }
        assert!(v
            .open_fields(&a.waybill_no, 7, &swapped.0, &[Field::RecipientPhone])
            .is_err());
        // Wrong bucket.
        assert!(v
            .open_fields(&a.waybill_no, 8, &sa.0, &[Field::RecipientPhone])
            .is_err());
    }

    #[test]
    fn wrong_master_key_is_named_and_missing_bucket_is_shredded() {
        let (v, store) = vault();
        let wb = waybill("WA", "王芳", "13800138000", "一路1号");
        let (s, _) = v.seal(&wb, 3).unwrap();
        let other = Vault::open(MasterKey::from_bytes([2u8; 32]), store.clone());
        assert!(matches!(other, Err(VaultError::WrongMasterKey { .. })));
        // Each group has its own key: destroying the contact key leaves the address readable.
        assert!(store.remove("day:3:contact"));
        v.forget_key(3, FieldGroup::Contact);
        for f in [Field::RecipientName, Field::SenderPhone] {
            assert!(matches!(
                v.open_fields(&wb.waybill_no, 3, &s.0, &[f]),
                Err(VaultError::Shredded(3))
            ));
        }
        let left = v
            .open_fields(
                &wb.waybill_no,
                3,
                &s.0,
                &[Field::RecipientDetail, Field::Items],
            )
            .unwrap();
        assert_eq!(left[0].1, "一路1号");
        assert!(store.remove("day:3:items"));
        v.forget_key(3, FieldGroup::Items);
        assert!(matches!(
            v.open_fields(&wb.waybill_no, 3, &s.0, &[Field::Items]),
            Err(VaultError::Shredded(3))
        ));
    }

    #[test]
    fn ciphertext_does_not_contain_plaintext() {
        let (v, _) = vault();
        let wb = waybill("WA", "王芳", "13800138000", "建设一路66号");
        let (s, _) = v.seal(&wb, 1).unwrap();
        for needle in ["13800138000", "王芳", "建设一路66号"] {
            assert!(!s.0.windows(needle.len()).any(|w| w == needle.as_bytes()));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn seal_open_round_trip(name in "\\PC{1,20}", phone in "1[3-9][0-9]{9}", detail in "\\PC{1,60}", bucket in 0i64..40000) {
            prop_assume!(!name.trim().is_empty() && !detail.trim().is_empty());
            let (v, _) = vault();
            let wb = waybill("W1", &name, &phone, &detail);
            let (s, blind) = v.seal(&wb, bucket).unwrap();
            let got = v.open_fields(&wb.waybill_no, bucket, &s.0, &Field::ALL).unwrap();
            let m: HashMap<Field, String> = got.into_iter().collect();
            prop_assert_eq!(&m[&Field::RecipientName], &name);
            prop_assert_eq!(&m[&Field::RecipientPhone], &phone);
            prop_assert_eq!(&m[&Field::RecipientDetail], &detail);
            prop_assert_eq!(blind[0].1, v.blind().phone(&phone).unwrap());
            // Any single flipped byte in a ciphertext makes it fail to open.
            let mut bad = s.0.clone();
            let i = bad.len() - 5;
            bad[i] ^= 1;
            prop_assert!(v.open_fields(&wb.waybill_no, bucket, &bad, &[Field::Items]).is_err());
        }
    }
}
