//! The sandbox's keys: the partner's it accepts and its own, generated when not given.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bank131::{Signer, Verifier};

use crate::SandboxError;

/// Writes a file readable by its owner only, atomically (temp file + rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_private_with(path, |file| file.write_all(bytes))
}

/// [`write_private`], with the content written by `write` straight into the
/// file (a large state is streamed, never held whole in memory); the file
/// is synced to disk after `write` returns.
pub fn write_private_with(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir)?;
    }
    // A fresh name, created exclusively with its final mode: no window in
    // which the secret is readable, and a planted file or symlink is refused
    // instead of followed.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = path.with_extension(format!("tmp-{}-{nonce}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut file| {
        write(&mut file)?;
        file.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Creates `dir` (and its parents) readable by the owner only (0700) when
/// it does not exist; an existing directory is left as it is.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Keys the sandbox works with: the partner's public key(s) it accepts and
/// its own signing key, generated into `dir` when no file is given.
#[derive(Debug)]
pub struct SandboxKeys {
    /// Verifies the partner's requests.
    pub partner_keys: Verifier,
    /// Signs webhooks.
    pub bank_signer: Arc<Signer>,
    /// Where the partner's private key was generated (when it was).
    pub partner_private_key_file: Option<PathBuf>,
    /// The bank's public key file (for the partner to verify webhooks).
    pub bank_public_key_file: PathBuf,
}

impl SandboxKeys {
    /// Loads the given key files, or generates missing keys into `dir`
    /// (kept there, so a restart uses the same keys).
    pub fn load_or_generate(
        dir: &Path,
        partner_public_key_file: Option<&Path>,
        bank_private_key_file: Option<&Path>,
    ) -> Result<Self, SandboxError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| SandboxError(format!("cannot read {}: {e}", p.display())))
        };
        let key_err = |e: bank131::KeyError| SandboxError(e.0);
        let (partner_keys, partner_private_key_file) = if let Some(file) = partner_public_key_file {
            (
                Verifier::from_pems([read(file)?.as_str()]).map_err(key_err)?,
                None,
            )
        } else {
            let private = dir.join("partner_private.pem");
            let signer = load_or_create(&private, &dir.join("partner_public.pem"))?;
            (
                Verifier::from_pems([signer.public_pem().map_err(key_err)?.as_str()])
                    .map_err(key_err)?,
                Some(private),
            )
        };
        let (bank_signer, bank_public_key_file) = if let Some(file) = bank_private_key_file {
            let signer = Signer::from_pem(&read(file)?).map_err(key_err)?;
            // Into the keys directory, never beside the user's own file.
            let public = dir.join("bank_public.pem");
            write_private(&public, signer.public_pem().map_err(key_err)?.as_bytes())
                .map_err(|e| SandboxError(format!("cannot write {}: {e}", public.display())))?;
            (signer, public)
        } else {
            let public = dir.join("bank_public.pem");
            (
                load_or_create(&dir.join("bank_private.pem"), &public)?,
                public,
            )
        };
        Ok(Self {
            partner_keys,
            bank_signer: Arc::new(bank_signer),
            partner_private_key_file,
            bank_public_key_file,
        })
    }
}

/// Reads a private key, or generates one and writes both halves.
pub fn load_or_create(private: &Path, public: &Path) -> Result<Signer, SandboxError> {
    if private.exists() {
        let text = std::fs::read_to_string(private)
            .map_err(|e| SandboxError(format!("cannot read {}: {e}", private.display())))?;
        return Signer::from_pem(&text)
            .map_err(|e| SandboxError(format!("{}: {e}", private.display())));
    }
    let signer = Signer::generate().map_err(|e| SandboxError(e.0))?;
    let write = |path: &Path, text: String| {
        write_private(path, text.as_bytes())
            .map_err(|e| SandboxError(format!("cannot write {}: {e}", path.display())))
    };
    write(
        private,
        signer.private_pem().map_err(|e| SandboxError(e.0))?,
    )?;
    write(public, signer.public_pem().map_err(|e| SandboxError(e.0))?)?;
    Ok(signer)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("recur-keys-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn secrets_are_created_owner_only_in_an_owner_only_directory() {
        let dir = scratch("modes");
        let file = dir.join("state").join("api_key");
        write_private(&file, b"sk_sandbox_secret").unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&dir.join("state")), 0o700);
        assert_eq!(std::fs::read(&file).unwrap(), b"sk_sandbox_secret");
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("state")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn a_planted_symlink_is_replaced_not_followed() {
        let dir = scratch("symlink");
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, b"untouched").unwrap();
        let key = dir.join("token_key");
        std::os::unix::fs::symlink(&victim, &key).unwrap();
        write_private(&key, b"secret").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
        assert!(
            std::fs::symlink_metadata(&key)
                .unwrap()
                .file_type()
                .is_file()
        );
        assert_eq!(mode(&key), 0o600);
    }

    #[test]
    fn a_supplied_bank_key_gets_nothing_written_beside_it() {
        let dir = scratch("supplied");
        let own = dir.join("mine");
        std::fs::create_dir_all(&own).unwrap();
        let signer = Signer::generate().unwrap();
        let supplied = own.join("bank.pem");
        std::fs::write(&supplied, signer.private_pem().unwrap()).unwrap();
        let keys_dir = dir.join("sandbox-keys");
        let keys = SandboxKeys::load_or_generate(&keys_dir, None, Some(&supplied)).unwrap();
        let beside: Vec<_> = std::fs::read_dir(&own).unwrap().collect();
        assert_eq!(beside.len(), 1, "only the user's own file");
        assert!(keys.bank_public_key_file.starts_with(&keys_dir));
    }
}
