//! The plugin's configuration: the `config` object of its `plugins` entry, overridable per
//! connection by the `options_json` of `connect`. Parsing is pure (no I/O besides reading a CA
//! file when one is named), so every rule here is unit-tested.
//!
//! Trust is explicit: either the SHA-256 fingerprint of the server's certificate is pinned
//! (`server_cert_sha256`, what `chime-server` prints and writes for its self-signed certificate),
//! or a PEM file of trusted CA certificates is named (`ca_cert_path`) and the certificate is
//! verified the WebPKI way, host name included. With neither, `connect` refuses: a transport that
//! trusts every certificate would make TLS pointless.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Default connection establishment timeout: under the plugin host's default 5 s call timeout,
/// so the plugin answers (with a reason) before the host gives up on the call.
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 4_000;
/// Default interval of QUIC keep-alive packets (keeps NAT bindings and detects loss of the path).
const DEFAULT_KEEP_ALIVE_MS: u64 = 5_000;
/// Default QUIC idle timeout: a path silent this long is declared dead.
const DEFAULT_IDLE_TIMEOUT_MS: u64 = 30_000;
/// Default largest frame accepted from the server (the protocol's default limit, 4 MiB).
const DEFAULT_MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// Why a configuration or URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The JSON is not a valid configuration.
    #[error("invalid config: {0}")]
    Json(String),
    /// The fingerprint is not 64 hex digits (colons allowed).
    #[error("server_cert_sha256 {0:?} is not a SHA-256 fingerprint (64 hex digits)")]
    Fingerprint(String),
    /// The URL is not `quic://host:port`.
    #[error("url {0:?} is not quic://HOST:PORT")]
    Url(String),
    /// Neither a pin nor a CA file.
    #[error("no trust configured: set server_cert_sha256 (pin) or ca_cert_path")]
    NoTrust,
    /// A value out of range.
    #[error("{0}")]
    Range(String),
}

/// The JSON form (config or options): every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server_cert_sha256: Option<String>,
    ca_cert_path: Option<PathBuf>,
    connect_timeout_ms: Option<u64>,
    keep_alive_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_frame_bytes: Option<usize>,
}

/// How the server's certificate is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Only the certificate with this SHA-256 fingerprint (of its DER encoding).
    Pinned([u8; 32]),
    /// Certificates chaining to the CAs of this PEM file, for the URL's host name.
    CaFile(PathBuf),
}

/// A resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicConfig {
    /// Certificate trust (`None` = not configured; `connect` refuses).
    pub trust: Option<Trust>,
    /// Connect + TLS handshake timeout.
    pub connect_timeout: Duration,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Largest frame accepted from the server.
    pub max_frame_bytes: usize,
}

impl Default for QuicConfig {
    fn default() -> Self {
        Self {
            trust: None,
            connect_timeout: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
            keep_alive: Duration::from_millis(DEFAULT_KEEP_ALIVE_MS),
            idle_timeout: Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

impl QuicConfig {
    /// Parses the plugin config (`""` or `null` mean defaults).
    pub fn parse(json: &str) -> Result<Self, ConfigError> {
        Self::default().merged(json)
    }

    /// This config with the fields set in `json` (a connection's options) overriding it. A pin
    /// given in the options replaces a CA file of the config and the other way round.
    pub fn merged(&self, json: &str) -> Result<Self, ConfigError> {
        let json = json.trim();
        if json.is_empty() || json == "null" {
            return Ok(self.clone());
        }
        let raw: RawConfig =
            serde_json::from_str(json).map_err(|e| ConfigError::Json(e.to_string()))?;
        let mut out = self.clone();
        if raw.server_cert_sha256.is_some() && raw.ca_cert_path.is_some() {
            return Err(ConfigError::Json(
                "server_cert_sha256 and ca_cert_path are exclusive".to_owned(),
            ));
        }
        if let Some(pin) = raw.server_cert_sha256 {
            out.trust = Some(Trust::Pinned(parse_fingerprint(&pin)?));
        }
        if let Some(path) = raw.ca_cert_path {
            out.trust = Some(Trust::CaFile(path));
        }
        if let Some(ms) = raw.connect_timeout_ms {
            out.connect_timeout = positive_ms("connect_timeout_ms", ms)?;
        }
        if let Some(ms) = raw.keep_alive_ms {
            out.keep_alive = positive_ms("keep_alive_ms", ms)?;
        }
        if let Some(ms) = raw.idle_timeout_ms {
            out.idle_timeout = positive_ms("idle_timeout_ms", ms)?;
        }
        if let Some(bytes) = raw.max_frame_bytes {
            if bytes == 0 || bytes > u32::MAX as usize {
                return Err(ConfigError::Range(format!(
                    "max_frame_bytes {bytes} is out of range"
                )));
            }
            out.max_frame_bytes = bytes;
        }
        if out.keep_alive >= out.idle_timeout {
            return Err(ConfigError::Range(format!(
                "keep_alive_ms ({:?}) must be shorter than idle_timeout_ms ({:?})",
                out.keep_alive, out.idle_timeout
            )));
        }
        Ok(out)
    }
}

fn positive_ms(name: &str, ms: u64) -> Result<Duration, ConfigError> {
    if ms == 0 || ms > 86_400_000 {
        return Err(ConfigError::Range(format!(
            "{name} {ms} is out of range (1..=86400000)"
        )));
    }
    Ok(Duration::from_millis(ms))
}

/// Parses a SHA-256 fingerprint: 64 hex digits, either case, optionally separated by colons.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], ConfigError> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
    let bad = || ConfigError::Fingerprint(text.to_owned());
    if digits.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let hi = hex_value(pair[0]).ok_or_else(bad)?;
        let lo = hex_value(pair[1]).ok_or_else(bad)?;
        out[i] = (hi << 4) | lo;
    }
    Ok(out)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Lowercase hex of a fingerprint (for error messages).
pub fn fingerprint_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where to connect: the host (the TLS server name) and the port of `quic://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// UDP port.
    pub port: u16,
}

impl Target {
    /// Parses `quic://HOST:PORT` (IPv6 as `quic://[::1]:PORT`); a trailing `/` or path is
    /// ignored.
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::Url(url.to_owned());
        let rest = url.strip_prefix("quic://").ok_or_else(bad)?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, tail) = v6.split_once(']').ok_or_else(bad)?;
            (host, tail.strip_prefix(':').ok_or_else(bad)?)
        } else {
            authority.rsplit_once(':').ok_or_else(bad)?
        };
        if host.is_empty() || host.contains(':') && !authority.starts_with('[') {
            return Err(bad());
        }
        let port: u16 = port.parse().map_err(|_| bad())?;
        if port == 0 {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";

    #[test]
    fn fingerprints_accept_hex_with_or_without_colons() {
        let plain = parse_fingerprint(PIN).unwrap();
        assert_eq!(plain[0], 0x00);
        assert_eq!(plain[5], 0x55);
        assert_eq!(plain[31], 0xff);
        let colons: String = PIN
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), plain);
        assert_eq!(fingerprint_hex(&plain), PIN.to_lowercase());
        assert!(matches!(
            parse_fingerprint("abcd"),
            Err(ConfigError::Fingerprint(_))
        ));
        assert!(matches!(
            parse_fingerprint(&PIN.replace('0', "g")),
            Err(ConfigError::Fingerprint(_))
        ));
    }

    #[test]
    fn options_override_config() {
        let config = QuicConfig::parse(&format!(
            r#"{{"server_cert_sha256":"{PIN}","connect_timeout_ms":1500}}"#
        ))
        .unwrap();
        assert_eq!(config.connect_timeout, Duration::from_millis(1500));
        assert_eq!(
            config.trust,
            Some(Trust::Pinned(parse_fingerprint(PIN).unwrap()))
        );
        let merged = config
            .merged(r#"{"ca_cert_path":"/etc/ca.pem","idle_timeout_ms":60000}"#)
            .unwrap();
        assert_eq!(merged.trust, Some(Trust::CaFile("/etc/ca.pem".into())));
        assert_eq!(merged.idle_timeout, Duration::from_secs(60));
        assert_eq!(merged.connect_timeout, Duration::from_millis(1500));
        assert_eq!(config.merged("{}").unwrap(), config);
        assert_eq!(config.merged("").unwrap(), config);
        assert_eq!(QuicConfig::parse("null").unwrap(), QuicConfig::default());
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        assert!(matches!(
            QuicConfig::parse(r#"{"pin":"x"}"#),
            Err(ConfigError::Json(_))
        ));
        assert!(matches!(
            QuicConfig::parse(r#"{"connect_timeout_ms":0}"#),
            Err(ConfigError::Range(_))
        ));
        assert!(matches!(
            QuicConfig::parse(r#"{"keep_alive_ms":5000,"idle_timeout_ms":1000}"#),
            Err(ConfigError::Range(_))
        ));
        assert!(matches!(
            QuicConfig::parse(&format!(
                r#"{{"server_cert_sha256":"{PIN}","ca_cert_path":"/x"}}"#
            )),
            Err(ConfigError::Json(_))
        ));
    }

    #[test]
    fn urls_name_host_and_port() {
        assert_eq!(
            Target::parse("quic://127.0.0.1:7443").unwrap(),
            Target {
                host: "127.0.0.1".into(),
                port: 7443
            }
        );
        assert_eq!(
            Target::parse("quic://chat.example.com:443/").unwrap(),
            Target {
                host: "chat.example.com".into(),
                port: 443
            }
        );
        assert_eq!(
            Target::parse("quic://[::1]:9000").unwrap(),
            Target {
                host: "::1".into(),
                port: 9000
            }
        );
        for bad in [
            "ws://127.0.0.1:1/ws",
            "quic://127.0.0.1",
            "quic://:80",
            "quic://h:0",
            "quic://::1:80",
            "quic://h:99999",
        ] {
            assert_eq!(
                Target::parse(bad),
                Err(ConfigError::Url(bad.to_owned())),
                "{bad}"
            );
        }
    }
}
