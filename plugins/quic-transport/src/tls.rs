//! TLS 1.3 for the QUIC connection: the rustls client configuration (ring provider, ALPN
//! `chime/1`) and the pinning verifier.
//!
//! A pinned certificate is trusted by the SHA-256 of its DER encoding and nothing else: the
//! server's self-signed certificate has no CA and its name need not match the URL's host (the
//! pin is the stronger check). The handshake signature is still verified against the pinned
//! certificate's key, so possessing a copy of the certificate is not enough to impersonate the
//! server.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::config::{Trust, fingerprint_hex};

/// The ALPN protocol id both sides require.
pub const ALPN: &[u8] = b"chime/1";

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or holds no certificate.
    #[error("ca_cert_path {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The SHA-256 fingerprint of a DER certificate.
pub fn fingerprint(cert: &[u8]) -> [u8; 32] {
    Sha256::digest(cert).into()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for `trust`: TLS 1.3 only, ALPN `chime/1`.
pub fn client_config(trust: &Trust) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let mut config = match trust {
        Trust::Pinned(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCert {
                pin: *pin,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Trust::CaFile(path) => {
            let ca_error = |reason: String| TlsError::CaFile {
                path: path.display().to_string(),
                reason,
            };
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_error(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("no certificate in the file".to_owned()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            }
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|e| ca_error(e.to_string()))?;
            builder.with_webpki_verifier(verifier).with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Trusts exactly one certificate, by fingerprint.
#[derive(Debug)]
struct PinnedCert {
    pin: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = fingerprint(end_entity.as_ref());
        if seen == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate sha256 {} does not match the pinned {}",
                fingerprint_hex(&seen),
                fingerprint_hex(&self.pin)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_pin_accepts_its_certificate_only() {
        let cert = self_signed();
        let other = self_signed();
        let verifier = PinnedCert {
            pin: fingerprint(&cert),
            algorithms: provider().signature_verification_algorithms,
        };
        let name = ServerName::try_from("anything.invalid").unwrap();
        let now = UnixTime::now();
        assert!(
            verifier
                .verify_server_cert(&CertificateDer::from(cert.clone()), &[], &name, &[], now)
                .is_ok()
        );
        let refused = verifier
            .verify_server_cert(&CertificateDer::from(other.clone()), &[], &name, &[], now)
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            format!(
                "unexpected error: server certificate sha256 {} does not match the pinned {}",
                fingerprint_hex(&fingerprint(&other)),
                fingerprint_hex(&fingerprint(&cert))
            )
        );
    }

    #[test]
    fn configs_speak_tls13_with_the_alpn() {
        let config = client_config(&Trust::Pinned([7; 32])).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"chime/1".to_vec()]);
        let missing = client_config(&Trust::CaFile("/nonexistent/ca.pem".into())).unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("ca_cert_path /nonexistent/ca.pem: "),
            "{missing}"
        );
    }
}
