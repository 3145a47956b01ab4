//! Compact JWS (JWT) signing for the push providers: ES256 for the APNs provider token and RS256
//! for the FCM service-account assertion, with keys read from PKCS#8 PEM. Signing uses `ring`
//! (already in the tree through rustls); nothing here does I/O.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use serde_json::Value;

/// A key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not PEM / not base64.
    #[error("not a PEM private key: {0}")]
    Pem(String),
    /// Not a PKCS#8 key of the expected algorithm.
    #[error("not a PKCS#8 {alg} private key: {desc}")]
    Rejected {
        /// The algorithm wanted.
        alg: &'static str,
        /// ring's reason.
        desc: String,
    },
    /// Signing failed.
    #[error("signing failed")]
    Sign,
}

/// The DER bytes of the first PEM block of `pem` (or of `pem` itself when it is bare base64).
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, KeyError> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    if body.is_empty() {
        return Err(KeyError::Pem("empty".into()));
    }
    STANDARD
        .decode(body.as_bytes())
        .map_err(|e| KeyError::Pem(e.to_string()))
}

/// A signing key of one of the two algorithms.
pub enum SigningKey {
    /// ECDSA P-256 with SHA-256 (JWS `ES256`).
    Es256(EcdsaKeyPair),
    /// RSASSA-PKCS1-v1_5 with SHA-256 (JWS `RS256`).
    Rs256(RsaKeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.alg())
    }
}

impl SigningKey {
    /// An ES256 key from a PKCS#8 PEM (an APNs `.p8` file).
    pub fn es256_from_pem(pem: &str) -> Result<Self, KeyError> {
        let der = pem_to_der(pem)?;
        EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &der,
            &SystemRandom::new(),
        )
        .map(Self::Es256)
        .map_err(|e| KeyError::Rejected {
            alg: "ES256",
            desc: e.to_string(),
        })
    }

    /// An RS256 key from a PKCS#8 PEM (a service account's `private_key`).
    pub fn rs256_from_pem(pem: &str) -> Result<Self, KeyError> {
        let der = pem_to_der(pem)?;
        RsaKeyPair::from_pkcs8(&der)
            .map(Self::Rs256)
            .map_err(|e| KeyError::Rejected {
                alg: "RS256",
                desc: e.to_string(),
            })
    }

    /// The JWS `alg`.
    pub fn alg(&self) -> &'static str {
        match self {
            Self::Es256(_) => "ES256",
            Self::Rs256(_) => "RS256",
        }
    }

    fn sign_bytes(&self, input: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match self {
            Self::Es256(k) => k
                .sign(&rng, input)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Self::Rs256(k) => {
                let mut out = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, input, &mut out)
                    .map_err(|_| KeyError::Sign)?;
                Ok(out)
            }
        }
    }

    /// `base64url(header) . base64url(claims) . base64url(signature)`, with `alg` set in the
    /// header from the key.
    pub fn sign(&self, mut header: Value, claims: &Value) -> Result<String, KeyError> {
        header["alg"] = Value::String(self.alg().into());
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.sign_bytes(input.as_bytes())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::KeyPair as _;
    use serde_json::json;

    fn pem(der: &[u8]) -> String {
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(der)
        )
    }

    #[test]
    fn es256_token_verifies() {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let key = SigningKey::es256_from_pem(&pem(doc.as_ref())).unwrap();
        let token = key
            .sign(json!({"kid": "K1"}), &json!({"iss": "TEAM", "iat": 1}))
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "ES256", "kid": "K1"}));
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(sig.len(), 64);
        let SigningKey::Es256(pair) = &key else {
            panic!("not ES256")
        };
        signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            pair.public_key().as_ref(),
        )
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .unwrap();
        assert!(SigningKey::rs256_from_pem(&pem(doc.as_ref())).is_err());
        assert!(SigningKey::es256_from_pem("nonsense").is_err());
    }
}
