//! The sandbox's keys: the partner's it accepts and its own, generated when not given.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bank131::{Signer, Verifier};

use crate::SandboxError;

/// Writes a file readable by its owner only, atomically (temp file + rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(tmp, path)
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
            let public = file.with_extension("pub.pem");
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
