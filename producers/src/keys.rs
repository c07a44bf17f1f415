//! A subscriber's HPKE key pair on disk: created once, readable by its owner only, and only its
//! public half ever leaves the machine.
//!
//! Credential halves are sealed to the public key a subscriber registers, so losing the private
//! key loses every credential released to it, and leaking it lets anyone open them. The file
//! therefore holds the raw 32-byte X25519 private key with mode 0600, and nothing here prints,
//! logs or formats it.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, Serializable};

/// Why a key file could not be read or written. Messages name the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read, created or written.
    #[error("cannot {action} key file {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a 32-byte X25519 private key.
    #[error("key file {0} does not hold an X25519 private key (32 raw bytes)")]
    Malformed(PathBuf),
    /// The subscriber id cannot name a file under the default directory.
    #[error("subscriber id `{0}` cannot name a key file; pass --key-file")]
    UnnamableId(String),
}

/// The default key file of a subscriber: `.tessera/keys/<id>.key` under the working directory.
pub fn default_path(subscriber_id: &str) -> Result<PathBuf, KeyError> {
    let nameable = !subscriber_id.is_empty()
        && !subscriber_id.starts_with('.')
        && !subscriber_id.contains(['/', '\\', '\0']);
    if !nameable {
        return Err(KeyError::UnnamableId(subscriber_id.to_string()));
    }
    Ok(Path::new(".tessera")
        .join("keys")
        .join(format!("{subscriber_id}.key")))
}

/// The public key of the pair stored at `path`, creating the pair first if the file does not
/// exist. Returns the 32-byte public key and whether it was created now.
pub fn load_or_create(path: &Path) -> Result<(Vec<u8>, bool), KeyError> {
    let io = |action| {
        move |source| KeyError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let private = <X25519HkdfSha256 as Kem>::PrivateKey::from_bytes(&bytes)
                .map_err(|_| KeyError::Malformed(path.to_path_buf()))?;
            let public = X25519HkdfSha256::sk_to_pk(&private);
            Ok((public.to_bytes().to_vec(), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io("create the directory of"))?;
            }
            let (private, public) = X25519HkdfSha256::gen_keypair();
            // create_new: never overwrite a key that appeared meanwhile; 0600 from the first
            // byte, not chmod after writing.
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io("create"))?;
            file.write_all(&private.to_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io("write"))?;
            Ok((public.to_bytes().to_vec(), true))
        }
        Err(e) => Err(io("read")(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_key_is_created_once_private_to_its_owner_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("B1.key");
        let (public, created) = load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(public.len(), 32);
        let metadata = std::fs::metadata(&path).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
        let private = std::fs::read(&path).unwrap();
        assert_eq!(private.len(), 32);
        assert_ne!(private, public);

        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again, public);
    }

    #[test]
    fn a_file_that_is_not_a_key_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("B1.key");
        std::fs::write(&path, b"secret-ish bytes").unwrap();
        let err = load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("does not hold an X25519 private key"), "{err}");
        assert!(!err.contains("secret-ish"), "{err}");
    }

    #[test]
    fn ids_that_would_escape_the_key_directory_need_an_explicit_file() {
        assert_eq!(
            default_path("B1").unwrap(),
            PathBuf::from(".tessera/keys/B1.key")
        );
        for id in ["../B1", "a/b", ".hidden", ""] {
            assert!(
                matches!(default_path(id), Err(KeyError::UnnamableId(_))),
                "{id}"
            );
        }
    }
}
