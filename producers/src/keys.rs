//! Key material on a party's disk, and the platform roles' public keys on the log.
//!
//! A private key file holds the raw 32-byte X25519 private key, readable by its owner only (mode
//! 0600): losing it loses every credential sealed to its public key, and leaking it lets anyone
//! open them. A file that anyone else may read is refused rather than used, as ssh does. A
//! provider's kept halves (co-sign custody) are secrets of the same kind, one 0600 file per offer
//! in the provider's key directory. Nothing here prints, logs or formats a secret byte; errors
//! name the file, never its content.
//!
//! The public keys of the platform roles clients check (the timekeeper, which providers seal to and
//! whose verdicts they believe; the delivery worker, whose deliveries subscribers open) are
//! published on the compacted `tessera.keys` topic under the role's name, signed, so clients fetch
//! them from the log like every other fact and pin them ([`Pinning`]).

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hpke::rand_core::UnwrapErr;
use rdkafka::ClientConfig;
use tessera_contract::sealing::{self, KEY_LEN, KeyHalf, PrivateKey, PublicKey};
use tessera_contract::signing::{SignatureError, SigningKey, VerifyingKey};
use tessera_contract::topics::KEYS;
use tessera_contract::{Event, KeyPublished};
use zeroize::Zeroizing;

use crate::client::{ClientError, Writer, Written, event_id, read_to_end};

/// Why key material could not be read or written. Messages name the file, never its content.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs, reason = "each variant's message names its fields")]
pub enum KeyError {
    /// The file could not be read, created or written.
    #[error("cannot {action} key file {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold exactly 32 bytes.
    #[error("key file {path} holds {len} bytes, not the {KEY_LEN} raw bytes of an X25519 key")]
    Malformed { path: PathBuf, len: usize },
    /// Others than the owner may read or write the file.
    #[error(
        "key file {} is open to others (mode {mode:03o}); make it private with `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Loose { path: PathBuf, mode: u32 },
    /// A new key would overwrite an existing file.
    #[error("key file {0} exists already; refusing to overwrite a key")]
    Exists(PathBuf),
    /// An id cannot name a file under the default directory.
    #[error("{what} `{id}` cannot name a key file; pass an explicit path")]
    UnnamableId { what: &'static str, id: String },
}

impl KeyError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KeyError {
        let path = path.to_path_buf();
        move |source| KeyError::Io {
            action,
            path,
            source,
        }
    }
}

/// The directory every default key path lives under, relative to the working directory.
fn keys_dir() -> PathBuf {
    Path::new(".tessera").join("keys")
}

/// `id` as a single path component: not empty, not hidden, no separators.
fn nameable(what: &'static str, id: &str) -> Result<(), KeyError> {
    let ok = !id.is_empty() && !id.starts_with('.') && !id.contains(['/', '\\', '\0']);
    if ok {
        Ok(())
    } else {
        Err(KeyError::UnnamableId {
            what,
            id: id.to_string(),
        })
    }
}

/// The default key file of a subscriber: `.tessera/keys/<id>.key` under the working directory.
pub fn default_path(subscriber_id: &str) -> Result<PathBuf, KeyError> {
    nameable("subscriber id", subscriber_id)?;
    Ok(keys_dir().join(format!("{subscriber_id}.key")))
}

/// A fresh private key from the operating system's generator.
pub fn new_private_key() -> PrivateKey {
    PrivateKey::generate(&mut UnwrapErr(getrandom::SysRng))
}

/// Creates the parent directory of `path` (owner-only, if it is new).
fn create_parent(path: &Path) -> Result<(), KeyError> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(KeyError::io("create the directory of", path)),
        None => Ok(()),
    }
}

/// Writes `secret` to a new file at `path`, mode 0600 from its first byte (not chmod after
/// writing), never over an existing file.
fn write_secret(path: &Path, secret: &[u8]) -> Result<(), KeyError> {
    create_parent(path)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => KeyError::Exists(path.to_path_buf()),
            _ => KeyError::io("create", path)(e),
        })?;
    file.write_all(secret)
        .and_then(|()| file.sync_all())
        .map_err(KeyError::io("write", path))
}

/// Reads a 32-byte secret file that only its owner may read; `None` if it does not exist.
fn read_secret(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(KeyError::io("read", path)(e)),
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Loose {
            path: path.to_path_buf(),
            mode,
        });
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(KeyError::io("read", path))?);
    if bytes.len() != KEY_LEN {
        return Err(KeyError::Malformed {
            path: path.to_path_buf(),
            len: bytes.len(),
        });
    }
    Ok(Some(bytes))
}

fn private_key(path: &Path, bytes: &[u8]) -> Result<PrivateKey, KeyError> {
    PrivateKey::from_bytes(bytes).map_err(|_| KeyError::Malformed {
        path: path.to_path_buf(),
        len: bytes.len(),
    })
}

/// Writes a new key pair's private key to `path` (which must not exist) and returns it.
pub fn generate(path: &Path) -> Result<PrivateKey, KeyError> {
    let key = new_private_key();
    write_secret(path, key.to_bytes().as_ref())?;
    Ok(key)
}

/// The private key stored at `path`.
pub fn load(path: &Path) -> Result<PrivateKey, KeyError> {
    match read_secret(path)? {
        Some(bytes) => private_key(path, &bytes),
        None => Err(KeyError::io("read", path)(
            std::io::ErrorKind::NotFound.into(),
        )),
    }
}

/// The private key stored at `path`, creating a new one there first if the file does not exist.
/// Returns the key and whether it was created now.
pub fn load_or_create(path: &Path) -> Result<(PrivateKey, bool), KeyError> {
    match read_secret(path)? {
        Some(bytes) => Ok((private_key(path, &bytes)?, false)),
        None => Ok((generate(path)?, true)),
    }
}

/// Where a provider keeps the halves of its co-signed offers: one 0600 file per offer,
/// `<offer id>.half`, in its key directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halves {
    dir: PathBuf,
}

impl Halves {
    /// The halves kept in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Halves { dir: dir.into() }
    }

    /// The default key directory of a provider: `.tessera/keys/<id>/` under the working directory.
    pub fn of_provider(provider_id: &str) -> Result<Self, KeyError> {
        nameable("provider id", provider_id)?;
        Ok(Halves::new(keys_dir().join(provider_id)))
    }

    /// The directory the halves are kept in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The provider's own key file in its key directory, `provider.key`: its offers, withdrawals
    /// and co-signs are signed with the signing key derived from it.
    pub fn identity(&self) -> PathBuf {
        self.dir.join("provider.key")
    }

    /// The provider's signing key, from [`Halves::identity`], created on first use; and whether
    /// it was created now.
    pub fn signer(&self) -> Result<(SigningKey, bool), KeyError> {
        let (key, created) = load_or_create(&self.identity())?;
        Ok((SigningKey::derive(&key), created))
    }

    fn path(&self, offer_id: &str) -> Result<PathBuf, KeyError> {
        nameable("offer id", offer_id)?;
        Ok(self.dir.join(format!("{offer_id}.half")))
    }

    /// Keeps the provider half of offer `offer_id`; an offer's half is kept once.
    pub fn keep(&self, offer_id: &str, half: &KeyHalf) -> Result<PathBuf, KeyError> {
        let path = self.path(offer_id)?;
        write_secret(&path, half.as_bytes())?;
        Ok(path)
    }

    /// The kept half of offer `offer_id`, or `None` if this provider keeps none for it (another
    /// provider's offer, or one in escrow custody).
    pub fn get(&self, offer_id: &str) -> Result<Option<KeyHalf>, KeyError> {
        let path = self.path(offer_id)?;
        match read_secret(&path)? {
            Some(bytes) => Ok(KeyHalf::from_bytes(&bytes)),
            None => Ok(None),
        }
    }

    /// Forgets the half of an offer that was never published.
    pub fn forget(&self, offer_id: &str) -> Result<(), KeyError> {
        let path = self.path(offer_id)?;
        std::fs::remove_file(&path).map_err(KeyError::io("remove", &path))
    }
}

/// A platform role whose keys clients fetch from `tessera.keys` and pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The timekeeper: providers seal the platform half to it and believe its verdicts.
    Timekeeper,
    /// The delivery worker: subscribers open only the deliveries it signed.
    Delivery,
    /// The ledger: balances count only the credits it signed.
    Ledger,
}

impl Role {
    /// Its name, which is also its record key on `tessera.keys`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Timekeeper => KeyPublished::TIMEKEEPER,
            Role::Delivery => KeyPublished::DELIVERY,
            Role::Ledger => KeyPublished::LEDGER,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a platform role's public keys could not be fetched.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs, reason = "each variant's message names its fields")]
pub enum PlatformKeyError {
    /// Kafka could not be read.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The role has not published its key.
    #[error("no {role} key on {topic}: start `tessera run {role} --key-file PATH` once")]
    Missing { role: Role, topic: String },
    /// The published key is not an X25519 public key.
    #[error("the {role} key on {topic} is unusable: {source}")]
    Unusable {
        role: Role,
        topic: String,
        #[source]
        source: sealing::KeyError,
    },
    /// The published record is not signed with the signing key it carries.
    #[error("the {role} key record on {topic} is not signed by the key it names: {source}")]
    Unauthenticated {
        role: Role,
        topic: String,
        #[source]
        source: SignatureError,
    },
    /// The published signing key is not the pinned one.
    #[error(
        "the {role} key on {topic} has fingerprint {found}, not the pinned {pinned} ({how}); if \
         the operator rotated the {role}'s key, pin the new fingerprint with \
         --{role}-fingerprint"
    )]
    NotPinned {
        role: Role,
        topic: String,
        found: String,
        pinned: String,
        how: String,
    },
    /// The pin file could not be read or written.
    #[error("cannot {action} the pin file {path}")]
    PinFile {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A platform role as a client knows it: the key boxes are sealed to, and the key its records
/// are signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformKeys {
    /// Its X25519 public key: the platform half is sealed to the timekeeper's.
    pub sealing: PublicKey,
    /// Its Ed25519 verifying key.
    pub signing: VerifyingKey,
}

/// How a client pins a platform role's signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinning {
    /// The operator gave its fingerprint (`--timekeeper-fingerprint`, `--delivery-fingerprint`).
    Fingerprint(String),
    /// Trust on first use: the fingerprint first seen is written to this file and required ever
    /// after.
    FirstUse(PathBuf),
}

impl Pinning {
    /// The fingerprint given, else first use with the pin file `.tessera/keys/<role>.pin`.
    pub fn new(role: Role, fingerprint: Option<String>) -> Self {
        match fingerprint {
            Some(fingerprint) => Pinning::Fingerprint(fingerprint.trim().to_lowercase()),
            None => Pinning::FirstUse(keys_dir().join(format!("{role}.pin"))),
        }
    }
}

/// What fetching a platform role's keys found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The keys, checked against the pin.
    pub keys: PlatformKeys,
    /// Set when this fetch pinned the key for the first time: a warning to show, naming the
    /// fingerprint to compare with the operator's.
    pub first_use: Option<String>,
}

/// Publishes `role`'s public keys on `tessera.keys`, replacing any earlier one, signed with its
/// signing key.
pub async fn publish(
    writer: &Writer,
    prefix: &str,
    role: Role,
    key: &PrivateKey,
) -> Result<Written, ClientError> {
    let signer = SigningKey::derive(key);
    let event = KeyPublished {
        event_id: event_id(),
        role: role.name().into(),
        suite: sealing::SUITE.into(),
        public_key: key.public_key().to_bytes(),
        signing_key: signer.verifying_key().to_bytes(),
    };
    writer
        .write_as(&signer, prefix, KEYS, role.name(), &event.into())
        .await
}

/// `role`'s keys as last published on `tessera.keys`, checked: the record must be signed by the
/// signing key it carries, and that key must be the pinned one.
pub async fn fetch(
    config: &ClientConfig,
    prefix: &str,
    role: Role,
    pinning: &Pinning,
) -> Result<Fetched, PlatformKeyError> {
    let topic = KEYS.full_name(prefix);
    let mut latest = None;
    for record in read_to_end(config, &topic, None).await? {
        if record.key.as_deref() != Some(role.name()) {
            continue;
        }
        latest = match record.event {
            Some(Ok(Event::KeyPublished(published))) => Some((published, record.signed)),
            // A tombstone withdraws the key; anything else under the role is not a key.
            _ => None,
        };
    }
    let (published, signed) = latest.ok_or_else(|| PlatformKeyError::Missing {
        role,
        topic: topic.clone(),
    })?;
    let unauthenticated = |source| PlatformKeyError::Unauthenticated {
        role,
        topic: topic.clone(),
        source,
    };
    let signing = VerifyingKey::from_bytes(&published.signing_key).map_err(unauthenticated)?;
    signing
        .verify_record(KEYS.name, &signed, role.name())
        .map_err(unauthenticated)?;
    let sealing = PublicKey::from_bytes(&published.public_key).map_err(|source| {
        PlatformKeyError::Unusable {
            role,
            topic: topic.clone(),
            source,
        }
    })?;
    let found = signing.fingerprint();
    let first_use = pinned(role, pinning, &topic, &found)?;
    Ok(Fetched {
        keys: PlatformKeys { sealing, signing },
        first_use,
    })
}

/// Checks `found` against the pin; on first use, pins it and says so.
fn pinned(
    role: Role,
    pinning: &Pinning,
    topic: &str,
    found: &str,
) -> Result<Option<String>, PlatformKeyError> {
    let mismatch = |pinned: &str, how: String| PlatformKeyError::NotPinned {
        role,
        topic: topic.to_string(),
        found: found.to_string(),
        pinned: pinned.to_string(),
        how,
    };
    match pinning {
        Pinning::Fingerprint(pinned) if pinned == found => Ok(None),
        Pinning::Fingerprint(pinned) => Err(mismatch(pinned, format!("--{role}-fingerprint"))),
        Pinning::FirstUse(path) => {
            let pin_error = |action| {
                let path = path.clone();
                move |source| PlatformKeyError::PinFile {
                    action,
                    path,
                    source,
                }
            };
            match std::fs::read_to_string(path) {
                Ok(pinned) if pinned.trim() == found => Ok(None),
                Ok(pinned) => Err(mismatch(
                    pinned.trim(),
                    format!("pinned on first use in {}", path.display()),
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir)
                            .map_err(pin_error("create the directory of"))?;
                    }
                    std::fs::write(path, format!("{found}\n")).map_err(pin_error("write"))?;
                    Ok(Some(format!(
                        "trusting the {role} key with fingerprint {found} on first use (pinned in \
                         {}); compare it with the one your operator gives",
                        path.display()
                    )))
                }
                Err(e) => Err(pin_error("read")(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_key_is_created_once_private_to_its_owner_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("B1.key");
        let (key, created) = load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let stored = std::fs::read(&path).unwrap();
        assert_eq!(stored.len(), 32);
        assert_ne!(stored, key.public_key().to_bytes());

        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(load(&path).unwrap().public_key(), key.public_key());
    }

    #[test]
    fn generate_never_overwrites_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tk.key");
        let key = generate(&path).unwrap();
        let err = generate(&path).unwrap_err();
        assert!(matches!(err, KeyError::Exists(_)), "{err}");
        assert_eq!(load(&path).unwrap().public_key(), key.public_key());
    }

    #[test]
    fn a_file_of_the_wrong_length_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("B1.key");
        std::fs::write(&path, b"secret-ish bytes").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        for err in [load(&path).unwrap_err(), load_or_create(&path).unwrap_err()] {
            let text = err.to_string();
            assert!(
                text.ends_with("holds 16 bytes, not the 32 raw bytes of an X25519 key"),
                "{text}"
            );
            assert!(!text.contains("secret-ish"), "{text}");
        }
    }

    #[test]
    fn a_key_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tk.key");
        generate(&path).unwrap();
        for loose in [0o640, 0o604, 0o620, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
            let err = load(&path).unwrap_err();
            assert!(
                matches!(err, KeyError::Loose { mode, .. } if mode == loose),
                "{err}"
            );
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(
            load(&path).is_ok(),
            "read-only for the owner is private too"
        );
    }

    #[test]
    fn a_missing_key_file_is_named() {
        let err = load(Path::new("/nonexistent/tk.key")).unwrap_err();
        assert_eq!(err.to_string(), "cannot read key file /nonexistent/tk.key");
    }

    #[test]
    fn halves_are_kept_once_per_offer_privately() {
        let dir = tempfile::tempdir().unwrap();
        let halves = Halves::new(dir.path().join("A"));
        let half = KeyHalf::from_bytes(&[9; 32]).unwrap();
        assert!(halves.get("offer-1").unwrap().is_none());
        let path = halves.keep("offer-1", &half).unwrap();
        assert_eq!(path, dir.path().join("A").join("offer-1.half"));
        assert_eq!(mode(&path), 0o600);
        assert_eq!(halves.get("offer-1").unwrap().unwrap().as_bytes(), &[9; 32]);
        assert!(matches!(
            halves.keep("offer-1", &half),
            Err(KeyError::Exists(_))
        ));
        assert!(matches!(
            halves.get("../x"),
            Err(KeyError::UnnamableId { .. })
        ));
        halves.forget("offer-1").unwrap();
        assert!(halves.get("offer-1").unwrap().is_none());
    }

    #[test]
    fn ids_that_would_escape_the_key_directory_need_an_explicit_path() {
        assert_eq!(
            default_path("B1").unwrap(),
            PathBuf::from(".tessera/keys/B1.key")
        );
        assert_eq!(
            Halves::of_provider("A").unwrap().dir(),
            Path::new(".tessera/keys/A")
        );
        for id in ["../B1", "a/b", ".hidden", ""] {
            assert!(
                matches!(default_path(id), Err(KeyError::UnnamableId { .. })),
                "{id}"
            );
            assert!(Halves::of_provider(id).is_err(), "{id}");
        }
    }
}
