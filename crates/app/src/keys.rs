//! The service's keys: token keys, its signer, the bank's verifier and the
//! API keys, read from files or generated and kept in sandbox mode.

use std::path::Path;
use std::sync::Arc;

use bank131::{Signer, Verifier};
use sandbox::SandboxKeys;
use store_sql::crypto::TokenKeys;

use crate::config::{Bank, Config};
use crate::{StartError, fail, ids};

/// Reads a value kept in the state directory, or makes and keeps one.
fn kept(
    state_dir: &Path,
    name: &str,
    make: impl FnOnce() -> String,
) -> Result<(String, bool), StartError> {
    let path = state_dir.join(name);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok((text.trim().to_owned(), false));
    }
    let value = make();
    sandbox::write_private(&path, value.as_bytes())
        .map_err(|e| StartError(format!("cannot write {}: {e}", path.display())))?;
    Ok((value, true))
}

fn read(path: &Path) -> Result<String, StartError> {
    std::fs::read_to_string(path)
        .map_err(|e| StartError(format!("cannot read {}: {e}", path.display())))
}

/// The keys of the service's side: token keys, its signer, the bank's verifier.
pub(crate) struct Keys {
    pub(crate) token: Arc<TokenKeys>,
    pub(crate) signer: Arc<Signer>,
    pub(crate) bank: Verifier,
    pub(crate) api_keys: Vec<String>,
    pub(crate) generated_key: bool,
}

pub(crate) fn keys(config: &Config) -> Result<(Keys, Option<SandboxKeys>), StartError> {
    let (token_key, _) = match &config.token_key {
        Some(k) => (k.clone(), false),
        None => kept(&config.state_dir, "token_key", TokenKeys::generate_base64)?,
    };
    let token = Arc::new(
        TokenKeys::from_base64(&token_key, config.token_key_old.as_deref())
            .map_err(|e| StartError(e.0))?,
    );
    let (api_keys, generated_key) = if let Some(keys) = &config.api_keys {
        (keys.clone(), false)
    } else {
        let (key, generated) = kept(&config.state_dir, "api_key", || {
            format!("sk_sandbox_{}", ids::random_hex(16))
        })?;
        (vec![key], generated)
    };
    let (signer, bank, sandbox_keys) = match &config.bank {
        Bank::Sandbox { .. } => {
            let sandbox_keys =
                SandboxKeys::load_or_generate(&config.state_dir.join("sandbox-keys"), None, None)
                    .map_err(|e| StartError(format!("sandbox keys: {e}")))?;
            let partner = sandbox_keys
                .partner_private_key_file
                .clone()
                .ok_or_else(|| StartError("sandbox keys: no partner key was generated".into()))?;
            let signer = Signer::from_pem(&read(&partner)?).map_err(fail("sandbox partner key"))?;
            let bank = Verifier::from_pems([read(&sandbox_keys.bank_public_key_file)?.as_str()])
                .map_err(fail("sandbox bank key"))?;
            (signer, bank, Some(sandbox_keys))
        }
        Bank::Remote {
            private_key_file,
            public_key_files,
            ..
        } => {
            let signer = Signer::from_pem(&read(private_key_file)?)
                .map_err(fail("BANK131_PRIVATE_KEY_FILE"))?;
            let texts = public_key_files
                .iter()
                .map(|p| read(p))
                .collect::<Result<Vec<_>, _>>()?;
            let bank = Verifier::from_pems(texts.iter().map(String::as_str))
                .map_err(fail("BANK131_PUBLIC_KEY_FILE"))?;
            (signer, bank, None)
        }
    };
    Ok((
        Keys {
            token,
            signer: Arc::new(signer),
            bank,
            api_keys,
            generated_key,
        },
        sandbox_keys,
    ))
}
