//! UserSig v2 (`TLS.ver` "2.0"): generation and verification, exactly as Tencent's public
//! TLSSigAPIv2 generators sign it (`shared/spec/usersig.md`), so an app's existing backend code
//! for UserSigs works unchanged against Chime.
//!
//! The key is used as its raw UTF-8 bytes (never hex-decoded). Tokens are zlib-compressed JSON in
//! base64 with Tencent's substitutions (`+`→`*`, `/`→`-`, `=`→`_`). Verification never compares
//! compressed bytes (deflate encoders differ); it parses the JSON, rebuilds the signed text and
//! compares the HMAC in constant time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use chime_proto::codes;
use flate2::write::ZlibEncoder;
use flate2::{Compression, Decompress, FlushDecompress, Status};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Largest inflated token we accept; a real token is a few hundred bytes.
const MAX_INFLATED_BYTES: u64 = 64 * 1024;

/// Why a UserSig was refused. Each variant maps to one server code ([`UserSigError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserSigError {
    /// The token expired (`now > time + expire`).
    #[error("UserSig expired at {expire_at}")]
    Expired {
        /// When it expired (seconds since the epoch).
        expire_at: i64,
    },
    /// The token is empty.
    #[error("UserSig is empty")]
    Empty,
    /// The signature does not match the app key.
    #[error("UserSig signature mismatch")]
    BadSignature,
    /// The token could not be decoded (base64, zlib, JSON, version or fields).
    #[error("UserSig undecodable: {0}")]
    Undecodable(String),
    /// The identifier in the token is not the login user.
    #[error("UserSig identifier {found:?} does not match the user {expected:?}")]
    IdentifierMismatch {
        /// The login user.
        expected: String,
        /// The identifier in the token.
        found: String,
    },
    /// The SDKAppID in the token is not the login app.
    #[error("UserSig SDKAppID {found} does not match the app {expected}")]
    AppMismatch {
        /// The login app.
        expected: u64,
        /// The SDKAppID in the token.
        found: u64,
    },
}

impl UserSigError {
    /// The server error code for this failure (`chime_proto::codes`).
    pub fn code(&self) -> i32 {
        match self {
            Self::Expired { .. } => codes::ERR_SVR_USER_SIG_EXPIRED,
            Self::Empty => codes::ERR_SVR_USER_SIG_EMPTY,
            Self::BadSignature => codes::ERR_SVR_USER_SIG_INVALID,
            Self::Undecodable(_) => codes::ERR_SVR_USER_SIG_DECODE,
            Self::IdentifierMismatch { .. } => codes::ERR_SVR_USER_SIG_IDENTIFIER_MISMATCH,
            Self::AppMismatch { .. } => codes::ERR_SVR_USER_SIG_APP_MISMATCH,
        }
    }
}

/// A UserSig that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Issue time (seconds since the epoch).
    pub time: i64,
    /// Validity in seconds, relative to `time`.
    pub expire: i64,
    /// `time + expire`: the last second at which the token is valid.
    pub expire_at: i64,
    /// The decoded userbuf, when the token carries one.
    pub userbuf: Option<Vec<u8>>,
}

/// The text that is HMAC-signed; `userbuf_b64` is the base64 string exactly as in the token.
fn signed_text(
    identifier: &str,
    sdk_app_id: u64,
    time: i64,
    expire: i64,
    userbuf_b64: Option<&str>,
) -> String {
    let mut text = format!(
        "TLS.identifier:{identifier}\nTLS.sdkappid:{sdk_app_id}\nTLS.time:{time}\nTLS.expire:{expire}\n"
    );
    if let Some(ub) = userbuf_b64 {
        text.push_str("TLS.userbuf:");
        text.push_str(ub);
        text.push('\n');
    }
    text
}

fn hmac_sha256(key: &str, text: &str) -> Vec<u8> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(text.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Builds the token's JSON document in the reference generator's key order (compact).
fn token_json(
    identifier: &str,
    sdk_app_id: u64,
    time: i64,
    expire: i64,
    userbuf_b64: Option<&str>,
    sig: &str,
) -> String {
    let id = serde_json::Value::String(identifier.to_owned()).to_string();
    let mut json = format!(
        "{{\"TLS.ver\":\"2.0\",\"TLS.identifier\":{id},\"TLS.sdkappid\":{sdk_app_id},\"TLS.time\":{time},\"TLS.expire\":{expire}"
    );
    if let Some(ub) = userbuf_b64 {
        json.push_str(",\"TLS.userbuf\":\"");
        json.push_str(ub);
        json.push('"');
    }
    json.push_str(",\"TLS.sig\":\"");
    json.push_str(sig);
    json.push_str("\"}");
    json
}

fn escape(b64: &str) -> String {
    b64.chars()
        .map(|c| match c {
            '+' => '*',
            '/' => '-',
            '=' => '_',
            c => c,
        })
        .collect()
}

/// Reverses Tencent's substitutions byte by byte (the base64 alphabet is ASCII; any other byte
/// passes through and fails the base64 decode).
fn unescape(token: &str) -> Vec<u8> {
    token
        .bytes()
        .map(|c| match c {
            b'*' => b'+',
            b'-' => b'/',
            b'_' => b'=',
            c => c,
        })
        .collect()
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Generates a UserSig valid for `expire_secs` from now.
pub fn gen_user_sig(sdk_app_id: u64, key: &str, user_id: &str, expire_secs: u64) -> String {
    gen_user_sig_at(sdk_app_id, key, user_id, expire_secs, now_secs(), None)
}

/// Generates a UserSig issued at `time_secs`, optionally carrying a `userbuf`.
pub fn gen_user_sig_at(
    sdk_app_id: u64,
    key: &str,
    user_id: &str,
    expire_secs: u64,
    time_secs: i64,
    userbuf: Option<&[u8]>,
) -> String {
    let expire = i64::try_from(expire_secs).unwrap_or(i64::MAX);
    let ub = userbuf.map(|b| STANDARD.encode(b));
    let text = signed_text(user_id, sdk_app_id, time_secs, expire, ub.as_deref());
    let sig = STANDARD.encode(hmac_sha256(key, &text));
    let json = token_json(user_id, sdk_app_id, time_secs, expire, ub.as_deref(), &sig);
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::new(6));
    // Writing to a Vec cannot fail.
    let compressed = match enc.write_all(json.as_bytes()).and_then(|()| enc.finish()) {
        Ok(bytes) => bytes,
        Err(_) => unreachable!("compressing into memory cannot fail"),
    };
    escape(&STANDARD.encode(compressed))
}

/// Decodes a token into its JSON document (reverse substitutions, base64, zlib).
pub fn decode_json(token: &str) -> Result<serde_json::Value, UserSigError> {
    let b64 = unescape(token.trim());
    let unpadded = b64
        .iter()
        .rposition(|&c| c != b'=')
        .map_or(0, |last| last + 1);
    let compressed = STANDARD_NO_PAD
        .decode(&b64[..unpadded])
        .map_err(|e| UserSigError::Undecodable(format!("base64: {e}")))?;
    let json = inflate(&compressed)?;
    serde_json::from_slice(&json).map_err(|e| UserSigError::Undecodable(format!("json: {e}")))
}

thread_local! {
    /// One zlib inflater per thread, reset for each token: a fresh one allocates and clears
    /// ~40 KB of tables and window, which was a tenth of a login's CPU.
    static INFLATER: RefCell<Decompress> = RefCell::new(Decompress::new(true));
}

/// Inflates a zlib stream of at most [`MAX_INFLATED_BYTES`] (truncated, corrupt or larger
/// streams are undecodable).
fn inflate(compressed: &[u8]) -> Result<Vec<u8>, UserSigError> {
    let undecodable = |why: &str| UserSigError::Undecodable(format!("zlib: {why}"));
    INFLATER.with(|cell| {
        let mut z = cell.borrow_mut();
        z.reset(true);
        let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).max(256));
        // Every round but the last consumes input or produces output (at most
        // MAX_INFLATED_BYTES), so the rounds are bounded; the cap only guards that reasoning.
        for _ in 0..100_000 {
            let (in_before, out_before) = (z.total_in(), out.len());
            let consumed = usize::try_from(in_before).unwrap_or(usize::MAX);
            let input = compressed.get(consumed..).unwrap_or_default();
            // Not `Finish`: miniz_oxide cannot resume a `Finish` call that ran out of room.
            let status = z
                .decompress_vec(input, &mut out, FlushDecompress::None)
                .map_err(|e| undecodable(&e.to_string()))?;
            if out.len() as u64 > MAX_INFLATED_BYTES {
                return Err(undecodable("inflated token too large"));
            }
            if status == Status::StreamEnd {
                return Ok(out);
            }
            if out.len() == out.capacity() {
                out.reserve(out.capacity());
            } else if z.total_in() == in_before && out.len() == out_before {
                // Room left, no progress and no end: the input ran out.
                return Err(undecodable("truncated stream"));
            }
        }
        Err(undecodable("stream does not end"))
    })
}

fn field_i64(doc: &serde_json::Value, name: &str) -> Result<i64, UserSigError> {
    doc.get(name)
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| UserSigError::Undecodable(format!("missing or invalid {name}")))
}

fn field_str<'a>(doc: &'a serde_json::Value, name: &str) -> Result<&'a str, UserSigError> {
    doc.get(name)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| UserSigError::Undecodable(format!("missing or invalid {name}")))
}

/// Verifies `token` for `user_id` of app `sdk_app_id` with the app's `key`, at `now_secs`:
/// every check, every time ([`verify`] answers the same through the cache).
pub fn verify_uncached(
    token: &str,
    sdk_app_id: u64,
    key: &str,
    user_id: &str,
    now_secs: i64,
) -> Result<Verified, UserSigError> {
    if token.trim().is_empty() {
        return Err(UserSigError::Empty);
    }
    let doc = decode_json(token)?;
    if field_str(&doc, "TLS.ver")? != "2.0" {
        return Err(UserSigError::Undecodable("TLS.ver is not 2.0".into()));
    }
    let found_app = doc
        .get("TLS.sdkappid")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| UserSigError::Undecodable("missing or invalid TLS.sdkappid".into()))?;
    if found_app != sdk_app_id {
        return Err(UserSigError::AppMismatch {
            expected: sdk_app_id,
            found: found_app,
        });
    }
    let identifier = field_str(&doc, "TLS.identifier")?;
    if identifier != user_id {
        return Err(UserSigError::IdentifierMismatch {
            expected: user_id.to_owned(),
            found: identifier.to_owned(),
        });
    }
    let time = field_i64(&doc, "TLS.time")?;
    let expire = field_i64(&doc, "TLS.expire")?;
    let userbuf_b64 = match doc.get("TLS.userbuf") {
        None => None,
        Some(v) => Some(
            v.as_str()
                .ok_or_else(|| UserSigError::Undecodable("invalid TLS.userbuf".into()))?,
        ),
    };
    let sig = STANDARD
        .decode(field_str(&doc, "TLS.sig")?)
        .map_err(|_| UserSigError::BadSignature)?;
    let text = signed_text(identifier, found_app, time, expire, userbuf_b64);
    let expected = hmac_sha256(key, &text);
    if !bool::from(expected.ct_eq(&sig)) {
        return Err(UserSigError::BadSignature);
    }
    let expire_at = time.saturating_add(expire);
    if now_secs > expire_at {
        return Err(UserSigError::Expired { expire_at });
    }
    let userbuf = match userbuf_b64 {
        Some(ub) => Some(
            STANDARD
                .decode(ub)
                .map_err(|e| UserSigError::Undecodable(format!("userbuf: {e}")))?,
        ),
        None => None,
    };
    Ok(Verified {
        time,
        expire,
        expire_at,
        userbuf,
    })
}

/// Tokens longer than this are verified every time, never cached (a real token is a few hundred
/// bytes; a large `userbuf` would make each entry large).
const MAX_CACHED_TOKEN_BYTES: usize = 1024;

/// Entries per generation of the process-wide cache ([`verify`]): two generations of
/// at most this many entries of a few hundred bytes each per app.
const CACHE_GENERATION: usize = 8192;

/// What a token that passed [`verify_uncached`] decoded to: all the checks that do not depend on the
/// login user or the clock passed for it.
#[derive(Debug, Clone)]
struct Passed {
    /// `TLS.identifier`.
    identifier: Box<str>,
    verified: Verified,
}

impl Passed {
    /// The checks of [`verify_uncached`] that depend on the login user and the clock, in its
    /// order.
    fn check(&self, user_id: &str, now_secs: i64) -> Result<Verified, UserSigError> {
        if *self.identifier != *user_id {
            return Err(UserSigError::IdentifierMismatch {
                expected: user_id.to_owned(),
                found: self.identifier.to_string(),
            });
        }
        if now_secs > self.verified.expire_at {
            return Err(UserSigError::Expired {
                expire_at: self.verified.expire_at,
            });
        }
        Ok(self.verified.clone())
    }
}

/// One app's verified tokens, for the key they were verified with.
#[derive(Debug, Default)]
struct AppTokens {
    key: String,
    current: HashMap<Box<str>, Passed>,
    previous: HashMap<Box<str>, Passed>,
}

/// A bounded cache of UserSigs that passed [`verify_uncached`], so that a user who logs in again with
/// the same token (a reconnect: the SDK keeps its UserSig until it expires) skips the inflate,
/// the JSON parse and the HMAC, about a tenth of a returning login's server CPU (W4 in
/// `docs/performance.md`).
///
/// Exact: an entry is the token's full text (trimmed, as [`verify_uncached`] reads it) under the app and
/// the app key it passed with, so a hit could only have passed the same checks again; what
/// depends on the login user and the clock — the identifier and the expiry — is checked on
/// every hit, with [`verify_uncached`]'s errors. Failures are never cached. Bounded: two generations
/// of at most `capacity` entries per app; when the current one is full it becomes the previous
/// one (a hit there moves the entry back), and the older is dropped.
#[derive(Debug)]
pub struct VerifiedCache {
    capacity: usize,
    apps: Mutex<HashMap<u64, AppTokens>>,
}

impl VerifiedCache {
    /// An empty cache of at most `capacity` entries per generation and app.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            apps: Mutex::new(HashMap::new()),
        }
    }

    /// [`verify_uncached`], answered from the cache when this token already passed for
    /// `sdk_app_id` with `key`.
    pub fn verify(
        &self,
        token: &str,
        sdk_app_id: u64,
        key: &str,
        user_id: &str,
        now_secs: i64,
    ) -> Result<Verified, UserSigError> {
        let token = token.trim();
        if let Some(answer) = self.lookup(token, sdk_app_id, key, user_id, now_secs) {
            return answer;
        }
        let verified = verify_uncached(token, sdk_app_id, key, user_id, now_secs)?;
        if token.len() <= MAX_CACHED_TOKEN_BYTES {
            let passed = Passed {
                identifier: user_id.into(),
                verified: verified.clone(),
            };
            self.insert(token, sdk_app_id, key, passed);
        }
        Ok(verified)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, AppTokens>> {
        // Every critical section leaves the maps consistent, so a poisoned lock is usable.
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer for a cached token, or `None` when it must be verified.
    fn lookup(
        &self,
        token: &str,
        sdk_app_id: u64,
        key: &str,
        user_id: &str,
        now_secs: i64,
    ) -> Option<Result<Verified, UserSigError>> {
        let mut apps = self.lock();
        let tokens = apps.get_mut(&sdk_app_id).filter(|t| t.key == key)?;
        if let Some(passed) = tokens.current.get(token) {
            return Some(passed.check(user_id, now_secs));
        }
        let (token, passed) = tokens.previous.remove_entry(token)?;
        let answer = passed.check(user_id, now_secs);
        if tokens.current.len() >= self.capacity {
            tokens.previous = std::mem::take(&mut tokens.current);
        }
        tokens.current.insert(token, passed);
        Some(answer)
    }

    fn insert(&self, token: &str, sdk_app_id: u64, key: &str, passed: Passed) {
        let mut apps = self.lock();
        let tokens = apps.entry(sdk_app_id).or_default();
        if tokens.key != key {
            *tokens = AppTokens {
                key: key.to_owned(),
                ..AppTokens::default()
            };
        }
        if tokens.current.len() >= self.capacity {
            tokens.previous = std::mem::take(&mut tokens.current);
        }
        tokens.current.insert(token.into(), passed);
    }

    /// Entries held (both generations, every app).
    pub fn len(&self) -> usize {
        self.lock()
            .values()
            .map(|t| t.current.len() + t.previous.len())
            .sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The process-wide cache of [`verify`].
static VERIFIED: LazyLock<VerifiedCache> = LazyLock::new(|| VerifiedCache::new(CACHE_GENERATION));

/// Verifies `token` for `user_id` of app `sdk_app_id` with the app's `key`, at `now_secs`, as
/// [`verify_uncached`] does, through the process-wide [`VerifiedCache`] (a login and the REST
/// admin API call this).
pub fn verify(
    token: &str,
    sdk_app_id: u64,
    key: &str,
    user_id: &str,
    now_secs: i64,
) -> Result<Verified, UserSigError> {
    VERIFIED.verify(token, sdk_app_id, key, user_id, now_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: u64 = 1_400_000_000;
    const KEY: &str = "test-secret-key";
    const T: i64 = 1_700_000_000;

    const A_SIG: &str = "jEmM879bo7ANaZxIof/2k4t1qo8AUM8Cqy6jqMi8MhM=";
    const A_JSON: &str = r#"{"TLS.ver":"2.0","TLS.identifier":"alice","TLS.sdkappid":1400000000,"TLS.time":1700000000,"TLS.expire":86400,"TLS.sig":"jEmM879bo7ANaZxIof/2k4t1qo8AUM8Cqy6jqMi8MhM="}"#;
    const A_TOKEN: &str = "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwok5mcmpUInilOzEgoLMFCUrQxMDKIDIlGTmpipZGZqjiqZWFGQWpSpZWZiZwISKM9OVrJSyXHN9Lcwtk-LNHf0Soyo889P0jbJNSgwL8y0cQ30tnAsrzbIKfTMtfDN8bZVqAXoGMDM_";
    const C_TOKEN: &str = "eJxVjTEOgkAURO-yWw0CEtBNKD4BSVALxKCUyC64orguYEiMdzciFE41814xL9hvIuXJJBDQFRWm-eaUVQ3PeY-TK8-YIGpapkJwCkQz1CE-0-AbA6JZ-5R1gksGZGEaI2prJk9tDgQQcZUcOpHo8T4rDUTEyvPjOLx-qzvDPrY9fvMCCJhuuUQn8CdaTIUhoqKT23krLNRVR4Y79xwcmVg3D*3i2fD*AOrlQME_";
    const C_USERBUF: &str = "000005616c69636553724e000000271065554280000000ff00000000";
    const C_JSON: &str = r#"{"TLS.ver":"2.0","TLS.identifier":"alice","TLS.sdkappid":1400000000,"TLS.time":1700000000,"TLS.expire":86400,"TLS.userbuf":"AAAFYWxpY2VTck4AAAAnEGVVQoAAAAD/AAAAAA==","TLS.sig":"6Dk9ABJG+1Vdp4pSgxrM3up7A20BrQRDhJXepKtq1jE="}"#;
    const D_TOKEN: &str = "eJxVjskKgmAUhd-lbgtxQvOHFgYlSAPmkC4drnFxzCkjevfAdNFZnfN9m-MG52hzAzbAQOR4WE*bEiw7SmnCYU4xzqJNsrCuKQEmyPycn*moQGCC*k9xrKlBYBtFXlDfYhP1KTDQLf0Q3MY6ED0nzmR9iuF5VjW1hz6TuNCGyObH5QPdgYF53vFlUT3N1vXcq3bpSzVRJCRZsXo-9fMMpdMqewV7o93C5ws-ZkSA";
    const D_USERBUF: &str =
        "010005616c69636553724e0000000000655542800000002a000000000006726f6f6d2d31";
    const D_JSON: &str = r#"{"TLS.ver":"2.0","TLS.identifier":"alice","TLS.sdkappid":1400000000,"TLS.time":1700000000,"TLS.expire":86400,"TLS.userbuf":"AQAFYWxpY2VTck4AAAAAAGVVQoAAAAAqAAAAAAAGcm9vbS0x","TLS.sig":"JNB0nmowJsUVUR9Oun7d63ei46QuXfXlke3M+kyYEGs="}"#;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn json(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn vector_a_signed_text_and_sig() {
        let text = signed_text("alice", APP, T, 86400, None);
        assert_eq!(
            text,
            "TLS.identifier:alice\nTLS.sdkappid:1400000000\nTLS.time:1700000000\nTLS.expire:86400\n"
        );
        assert_eq!(STANDARD.encode(hmac_sha256(KEY, &text)), A_SIG);
    }

    #[test]
    fn vector_a_generator_json_equals_the_vector() {
        let token = gen_user_sig_at(APP, KEY, "alice", 86400, T, None);
        assert_eq!(decode_json(&token).unwrap(), json(A_JSON));
        // Byte-exact JSON text too (key order, compactness).
        let doc = decode_json(A_TOKEN).unwrap();
        assert_eq!(doc, json(A_JSON));
        assert_eq!(
            token_json("alice", APP, T, 86400, None, A_SIG),
            A_JSON,
            "generator JSON differs from vector A"
        );
    }

    #[test]
    fn vector_a_verifies_with_a_fixed_clock() {
        let v = verify(A_TOKEN, APP, KEY, "alice", T + 1).unwrap();
        assert_eq!(v.expire_at, 1_700_086_400);
        assert_eq!(v.time, T);
        assert_eq!(v.expire, 86400);
        assert_eq!(v.userbuf, None);
    }

    #[test]
    fn vectors_c_and_d_verify_and_regenerate() {
        for (token, ub, js) in [(C_TOKEN, C_USERBUF, C_JSON), (D_TOKEN, D_USERBUF, D_JSON)] {
            let v = verify(token, APP, KEY, "alice", T + 1).unwrap();
            assert_eq!(v.expire_at, 1_700_086_400);
            assert_eq!(v.userbuf, Some(hex(ub)));
            assert_eq!(decode_json(token).unwrap(), json(js));
            let mine = gen_user_sig_at(APP, KEY, "alice", 86400, T, Some(&hex(ub)));
            assert_eq!(decode_json(&mine).unwrap(), json(js));
            assert_eq!(
                verify(token, APP, KEY, "alice", T + 86401),
                Err(UserSigError::Expired {
                    expire_at: 1_700_086_400
                })
            );
            assert_eq!(
                verify(token, APP, "wrong-key", "alice", T + 1),
                Err(UserSigError::BadSignature)
            );
        }
    }

    #[test]
    fn expiry_boundary_is_inclusive() {
        let token = gen_user_sig_at(APP, KEY, "bob", 100, T, None);
        assert_eq!(
            verify(&token, APP, KEY, "bob", T + 100).unwrap().expire_at,
            T + 100
        );
        let err = verify(&token, APP, KEY, "bob", T + 101).unwrap_err();
        assert_eq!(err, UserSigError::Expired { expire_at: T + 100 });
        assert_eq!(err.code(), 70001);
    }

    #[test]
    fn wrong_key_empty_and_garbage() {
        let err = verify(A_TOKEN, APP, "other", "alice", T).unwrap_err();
        assert_eq!(err.code(), 70003);
        assert_eq!(verify("", APP, KEY, "alice", T).unwrap_err().code(), 70002);
        assert_eq!(
            verify("  ", APP, KEY, "alice", T).unwrap_err().code(),
            70002
        );
        assert_eq!(
            verify("not-a-token!!", APP, KEY, "alice", T)
                .unwrap_err()
                .code(),
            70005
        );
    }

    /// The inflater is reused per thread: a long token (several output doublings), a truncated
    /// stream, an oversized one and a valid one again, in that order on one thread.
    #[test]
    fn reused_inflater_handles_long_truncated_and_oversized_streams() {
        let big = vec![7u8; 20_000];
        let long = gen_user_sig_at(APP, KEY, "alice", 86400, T, Some(&big));
        let v = verify(&long, APP, KEY, "alice", T).unwrap();
        assert_eq!(v.userbuf.as_deref(), Some(&big[..]));
        let compressed = STANDARD.decode(unescape(A_TOKEN)).unwrap();
        let truncated = escape(&STANDARD.encode(&compressed[..compressed.len() / 2]));
        assert_eq!(
            decode_json(&truncated).unwrap_err(),
            UserSigError::Undecodable("zlib: truncated stream".into())
        );
        let mut enc = ZlibEncoder::new(Vec::new(), Compression::new(6));
        enc.write_all(&vec![b' '; 100_000]).unwrap();
        let oversized = escape(&STANDARD.encode(enc.finish().unwrap()));
        assert_eq!(
            decode_json(&oversized).unwrap_err(),
            UserSigError::Undecodable("zlib: inflated token too large".into())
        );
        assert_eq!(decode_json(A_TOKEN).unwrap(), json(A_JSON));
    }

    #[test]
    fn mismatches() {
        let err = verify(A_TOKEN, APP, KEY, "bob", T).unwrap_err();
        assert_eq!(
            err,
            UserSigError::IdentifierMismatch {
                expected: "bob".into(),
                found: "alice".into()
            }
        );
        assert_eq!(err.code(), 70013);
        let err = verify(A_TOKEN, 1_400_000_001, KEY, "alice", T).unwrap_err();
        assert_eq!(
            err,
            UserSigError::AppMismatch {
                expected: 1_400_000_001,
                found: APP
            }
        );
        assert_eq!(err.code(), 70014);
    }

    /// Answers equal to [`verify_uncached`]'s, from a cache holding the token once.
    #[test]
    fn cache_answers_exactly_like_verify() {
        let cache = VerifiedCache::new(8);
        for token in [A_TOKEN, A_TOKEN, " A_TOKEN\n"] {
            let token = token.replace("A_TOKEN", A_TOKEN);
            assert_eq!(
                cache.verify(&token, APP, KEY, "alice", T + 1),
                verify_uncached(A_TOKEN, APP, KEY, "alice", T + 1)
            );
        }
        assert_eq!(cache.len(), 1);
        for (app, key, user, now) in [
            (APP, KEY, "bob", T + 1),
            (APP, KEY, "alice", T + 86_400),
            (APP, KEY, "alice", T + 86_401),
            (APP, "wrong-key", "alice", T + 1),
            (1_400_000_001, KEY, "alice", T + 1),
        ] {
            assert_eq!(
                cache.verify(A_TOKEN, app, key, user, now),
                verify_uncached(A_TOKEN, app, key, user, now),
                "{app} {key} {user} {now}"
            );
        }
        let err = cache.verify(A_TOKEN, APP, KEY, "alice", T + 86_401);
        assert_eq!(
            err,
            Err(UserSigError::Expired {
                expire_at: 1_700_086_400
            })
        );
        let v = cache.verify(C_TOKEN, APP, KEY, "alice", T + 1).unwrap();
        assert_eq!(v.userbuf, Some(hex(C_USERBUF)));
        assert_eq!(cache.verify(C_TOKEN, APP, KEY, "alice", T + 1).unwrap(), v);
    }

    #[test]
    fn cache_keeps_no_failure_and_no_token_of_another_key() {
        let cache = VerifiedCache::new(8);
        assert_eq!(
            cache.verify(A_TOKEN, APP, "wrong-key", "alice", T + 1),
            Err(UserSigError::BadSignature)
        );
        assert_eq!(
            cache.verify("", APP, KEY, "alice", T),
            Err(UserSigError::Empty)
        );
        assert!(cache.is_empty());
        cache.verify(A_TOKEN, APP, KEY, "alice", T + 1).unwrap();
        // The same token under another key of the same app: verified again (and refused).
        assert_eq!(
            cache.verify(A_TOKEN, APP, "other-key", "alice", T + 1),
            Err(UserSigError::BadSignature)
        );
        let mine = gen_user_sig_at(APP, "other-key", "alice", 100, T, None);
        cache.verify(&mine, APP, "other-key", "alice", T).unwrap();
        // The app's key changed: its old entries went.
        assert_eq!(cache.len(), 1);
        // Bytes that do not compress (a linear congruential sequence).
        let noise: Vec<u8> = (0..2000u32)
            .scan(1u32, |x, _| {
                *x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                Some((*x >> 16) as u8)
            })
            .collect();
        let big = gen_user_sig_at(APP, KEY, "alice", 100, T, Some(&noise));
        assert!(big.len() > MAX_CACHED_TOKEN_BYTES);
        cache.verify(&big, APP, KEY, "alice", T).unwrap();
        assert_eq!(cache.len(), 1, "a large token is not cached");
    }

    #[test]
    fn cache_is_bounded_by_two_generations() {
        let cache = VerifiedCache::new(2);
        let tokens: Vec<String> = (0..7)
            .map(|i| gen_user_sig_at(APP, KEY, &format!("u{i}"), 100, T, None))
            .collect();
        for (i, token) in tokens.iter().enumerate() {
            cache.verify(token, APP, KEY, &format!("u{i}"), T).unwrap();
            assert!(cache.len() <= 4);
        }
        // Every token still verifies, whether it was cached or evicted.
        for (i, token) in tokens.iter().enumerate() {
            let v = cache
                .verify(token, APP, KEY, &format!("u{i}"), T + 100)
                .unwrap();
            assert_eq!(v.expire_at, T + 100);
            assert_eq!(
                cache.verify(token, APP, KEY, &format!("u{i}"), T + 101),
                Err(UserSigError::Expired { expire_at: T + 100 })
            );
            assert!(cache.len() <= 4);
        }
    }

    #[test]
    fn current_time_generator_round_trips() {
        let token = gen_user_sig(APP, KEY, "carol", 3600);
        let v = verify(&token, APP, KEY, "carol", now_secs()).unwrap();
        assert_eq!(v.expire, 3600);
    }
}
