//! JWTs (HS256): the key, the claims, `issue` and `verify(token, now)`.
//! "Now" is passed in so expiry is testable; nothing here does I/O except
//! [`load_or_create_secret`], which reads or writes `secret.key`.

use std::io::Write;
use std::path::Path;

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Claims of a Duet token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The user's first name.
    pub name: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing token")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Signing and verifying keys.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
}

impl Keys {
    pub fn new(secret: &[u8], ttl_secs: i64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked against the `now` we are given.
        validation.validate_exp = false;
        validation.required_spec_claims = ["sub", "exp"].iter().map(|s| s.to_string()).collect();
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
        }
    }

    /// Issues a token for a user, valid from `now` for the configured lifetime.
    pub fn issue(&self, user_id: &str, name: &str, now: i64) -> String {
        let claims = Claims {
            sub: user_id.to_owned(),
            name: name.to_owned(),
            iat: now,
            exp: now + self.ttl_secs,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// Verifies signature, algorithm (HS256 only: `none` and others are
    /// refused) and expiry at `now`.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let data = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        if data.claims.exp <= now {
            return Err(AuthError::Expired);
        }
        if data.claims.sub.is_empty() {
            return Err(AuthError::Invalid("empty subject".into()));
        }
        Ok(data.claims)
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Reads `secret.key` in `dir` (its exact bytes are the key), or creates it
/// with 64 random hex characters and mode 0600.
pub fn load_or_create_secret(dir: &Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    let path = dir.join("secret.key");
    match std::fs::read(&path) {
        Ok(bytes) if !bytes.is_empty() => {
            #[cfg(unix)]
            if let Ok(meta) = std::fs::metadata(&path) {
                use std::os::unix::fs::PermissionsExt;
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        mode = format!("{mode:o}"),
                        "the secret key is readable by other users: anyone who reads it can sign tokens (chmod 600 it)"
                    );
                }
            }
            return Ok(bytes);
        }
        Ok(_) => anyhow::bail!(
            "{} is empty; delete it to generate a new key",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let key: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(key.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "generated a new secret key");
    Ok(key.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn issues_and_verifies() {
        let keys = Keys::new(b"secret", 3600);
        let t = keys.issue("u1", "Sophie", NOW);
        let c = keys.verify(&t, NOW + 10).unwrap();
        assert_eq!(
            (c.sub.as_str(), c.name.as_str(), c.exp),
            ("u1", "Sophie", NOW + 3600)
        );
    }

    #[test]
    fn refuses_expired_tokens() {
        let keys = Keys::new(b"secret", 3600);
        let t = keys.issue("u1", "S", NOW);
        assert_eq!(keys.verify(&t, NOW + 3600), Err(AuthError::Expired));
    }

    #[test]
    fn refuses_wrong_signature_and_garbage() {
        let t = Keys::new(b"other", 3600).issue("u1", "S", NOW);
        assert!(matches!(
            Keys::new(b"secret", 3600).verify(&t, NOW),
            Err(AuthError::Invalid(_))
        ));
        for bad in ["", "abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "...."] {
            assert!(
                Keys::new(b"secret", 3600).verify(bad, NOW).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_alg_none() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let claims = format!(
            r#"{{"sub":"u1","name":"S","iat":{NOW},"exp":{}}}"#,
            NOW + 100
        );
        let token = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims));
        assert!(Keys::new(b"secret", 3600).verify(&token, NOW).is_err());
    }

    #[test]
    fn secret_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_secret(dir.path()).unwrap();
        assert_eq!(a.len(), 64);
        let b = load_or_create_secret(dir.path()).unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secret.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
