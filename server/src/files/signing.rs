//! Upload tokens and signed download URLs: the two capabilities the file store hands out over the
//! authenticated connection and then checks on plain HTTP, where nobody is logged in.
//!
//! Both are HMAC-SHA256 under the file store's secret (`<store_dir>/secret`, 32 random bytes
//! made at first start), each over a domain-separated text so that a signature of one kind can
//! never pass as the other:
//! - an upload token `v1.<app>.<user, base64url>.<expires_at_ms>.<sig>` names the user it was
//!   issued to; the upload endpoints act as that user;
//! - a download URL carries `exp=<expires_at_ms>&sig=<sig>` over the file's uuid.
//!
//! Everything here is pure (time passed in) so that it is unit-tested without a server.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Version tag of the token format.
const TOKEN_VERSION: &str = "v1";

/// Why a token or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// Not in the expected format.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The signature does not match (tampered, or signed by another secret).
    #[error("bad signature")]
    BadSignature,
    /// Past its expiry.
    #[error("expired")]
    Expired,
}

/// Who an upload token was issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// The SDKAppID.
    pub app: u64,
    /// The user.
    pub user: String,
    /// Expiry (ms since the epoch).
    pub expires_at_ms: i64,
}

/// Signs and checks tokens and URLs with one secret.
#[derive(Clone)]
pub struct Signer {
    secret: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// A signer with `secret` (any length; the store makes 32 random bytes).
    pub fn new(secret: Vec<u8>) -> Self {
        Self { secret }
    }

    fn mac(&self, text: &str) -> HmacSha256 {
        // HMAC accepts keys of any length: this cannot fail.
        let mut mac = match HmacSha256::new_from_slice(&self.secret) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(text.as_bytes());
        mac
    }

    fn sign(&self, text: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(text).finalize().into_bytes())
    }

    fn verify(&self, text: &str, sig: &str) -> Result<(), SignError> {
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| SignError::Malformed("signature"))?;
        // Constant-time comparison.
        self.mac(text)
            .verify_slice(&sig)
            .map_err(|_| SignError::BadSignature)
    }

    /// An upload token for `(app, user)` valid until `expires_at_ms`.
    pub fn upload_token(&self, app: u64, user: &str, expires_at_ms: i64) -> String {
        let user64 = URL_SAFE_NO_PAD.encode(user.as_bytes());
        let body = format!("{TOKEN_VERSION}.{app}.{user64}.{expires_at_ms}");
        let sig = self.sign(&format!("chime-upload\n{body}"));
        format!("{body}.{sig}")
    }

    /// Checks an upload token at `now_ms`: the user it names, or why it is refused. The
    /// signature is checked before the expiry, so a forged token never learns whether it is
    /// expired.
    pub fn check_upload_token(&self, token: &str, now_ms: i64) -> Result<TokenClaims, SignError> {
        let (body, sig) = token
            .rsplit_once('.')
            .ok_or(SignError::Malformed("token"))?;
        let mut parts = body.split('.');
        let (Some(version), Some(app), Some(user64), Some(exp), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(SignError::Malformed("token"));
        };
        if version != TOKEN_VERSION {
            return Err(SignError::Malformed("token version"));
        }
        self.verify(&format!("chime-upload\n{body}"), sig)?;
        let app = app.parse().map_err(|_| SignError::Malformed("token"))?;
        let expires_at_ms: i64 = exp.parse().map_err(|_| SignError::Malformed("token"))?;
        let user = URL_SAFE_NO_PAD
            .decode(user64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(SignError::Malformed("token"))?;
        if now_ms >= expires_at_ms {
            return Err(SignError::Expired);
        }
        Ok(TokenClaims {
            app,
            user,
            expires_at_ms,
        })
    }

    /// The query string (`exp=…&sig=…`) of a download URL of `uuid` valid until
    /// `expires_at_ms`.
    pub fn download_query(&self, uuid: &str, expires_at_ms: i64) -> String {
        let sig = self.sign(&format!("chime-download\n{uuid}\n{expires_at_ms}"));
        format!("exp={expires_at_ms}&sig={sig}")
    }

    /// Checks a download URL's `exp` and `sig` for `uuid` at `now_ms`.
    pub fn check_download(
        &self,
        uuid: &str,
        exp: &str,
        sig: &str,
        now_ms: i64,
    ) -> Result<(), SignError> {
        let expires_at_ms: i64 = exp.parse().map_err(|_| SignError::Malformed("exp"))?;
        self.verify(&format!("chime-download\n{uuid}\n{expires_at_ms}"), sig)?;
        if now_ms >= expires_at_ms {
            return Err(SignError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(b"0123456789abcdef0123456789abcdef".to_vec())
    }

    #[test]
    fn upload_token_round_trips_until_expiry() {
        let s = signer();
        let token = s.upload_token(1_400_000_000, "alice.b", 10_000);
        assert_eq!(
            s.check_upload_token(&token, 9_999),
            Ok(TokenClaims {
                app: 1_400_000_000,
                user: "alice.b".into(),
                expires_at_ms: 10_000
            })
        );
        assert_eq!(
            s.check_upload_token(&token, 10_000),
            Err(SignError::Expired)
        );
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let s = signer();
        let token = s.upload_token(1, "alice", 10_000);
        // Another user, same signature.
        let bob = URL_SAFE_NO_PAD.encode("bob");
        let alice = URL_SAFE_NO_PAD.encode("alice");
        let forged = token.replace(&alice, &bob);
        assert_eq!(
            s.check_upload_token(&forged, 0),
            Err(SignError::BadSignature)
        );
        // A later expiry.
        let forged = token.replace(".10000.", ".99999.");
        assert_eq!(
            s.check_upload_token(&forged, 0),
            Err(SignError::BadSignature)
        );
        // Another secret.
        let other = Signer::new(b"another secret".to_vec());
        assert_eq!(
            other.check_upload_token(&token, 0),
            Err(SignError::BadSignature)
        );
        assert_eq!(
            s.check_upload_token("v1.1.x", 0),
            Err(SignError::Malformed("token"))
        );
        assert_eq!(
            s.check_upload_token("garbage", 0),
            Err(SignError::Malformed("token"))
        );
        assert_eq!(
            s.check_upload_token("v2.1.YQ.5.sig", 0),
            Err(SignError::Malformed("token version"))
        );
    }

    #[test]
    fn download_signatures_bind_uuid_and_expiry() {
        let s = signer();
        let query = s.download_query("u1", 5_000);
        let (exp, sig) = query
            .strip_prefix("exp=")
            .and_then(|q| q.split_once("&sig="))
            .unwrap();
        assert_eq!(exp, "5000");
        assert_eq!(s.check_download("u1", exp, sig, 4_999), Ok(()));
        assert_eq!(
            s.check_download("u1", exp, sig, 5_000),
            Err(SignError::Expired)
        );
        assert_eq!(
            s.check_download("u2", exp, sig, 0),
            Err(SignError::BadSignature)
        );
        assert_eq!(
            s.check_download("u1", "6000", sig, 0),
            Err(SignError::BadSignature)
        );
        assert_eq!(
            s.check_download("u1", "soon", sig, 0),
            Err(SignError::Malformed("exp"))
        );
        assert_eq!(
            s.check_download("u1", exp, "!!", 0),
            Err(SignError::Malformed("signature"))
        );
        // An upload token's signature is not a download signature.
        let token = s.upload_token(1, "u1", 5_000);
        let token_sig = token.rsplit_once('.').unwrap().1;
        assert_eq!(
            s.check_download("u1", exp, token_sig, 0),
            Err(SignError::BadSignature)
        );
    }
}
