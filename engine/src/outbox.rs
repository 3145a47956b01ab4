//! Outbox decisions, free of I/O: what an answer to a `SendMessage` means for the message (acked,
//! retry later, failed for good) and which outbox messages are on the wire right now, so that a
//! reconnect resends each unacked message exactly once per connection.
//!
//! The durable half (the outbox entries in the store) is written by the MessageActor; this module
//! only decides.

use std::collections::HashSet;

use chime_proto::codes;
use chime_proto::pb::{self, response};

use crate::ApiError;

/// What an answer to a `SendMessage` request means.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// The server stored (or, seq 0, accepted without storing) the message.
    Acked {
        /// Assigned seq (0: online-only / dropped by the group rate limit).
        seq: u64,
        /// Server time (ms).
        server_time_ms: i64,
        /// The sender's change version of the send (0 = none): applied once the message is
        /// stored ([`crate::actors::conversation::change_cursor`]).
        change_version: u64,
    },
    /// Nothing is known: keep the message in the outbox and send it again (same msg_id).
    Retry,
    /// The server refused the message: `send_fail`.
    Failed(ApiError),
}

/// Codes that say nothing about the message itself (the link, the session, a timeout, a
/// transient server condition): the message stays `sending`.
pub fn is_transient(code: i32) -> bool {
    matches!(
        code,
        codes::ERR_NET_DISCONNECT
            | codes::ERR_REQUEST_TIMEOUT
            | codes::ERR_NET_WAIT_ACK_TIMEOUT
            | codes::ERR_NET_CONNECT_FAILED
            | codes::ERR_SDK_NOT_LOGGED_IN
            | codes::ERR_INTERRUPTED
            | codes::ERR_SDK_INTERNAL
            | codes::ERR_SVR_RATE_LIMITED
            | codes::ERR_SVR_NOT_LOGGED_IN
            | codes::ERR_SVR_INTERNAL
    )
}

/// Classifies the answer to a `SendMessage`; `now_ms` stands in when an ack lacks a time.
pub fn classify(res: Result<pb::Response, ApiError>, now_ms: i64) -> SendOutcome {
    match res {
        Ok(resp) => match resp.kind {
            Some(response::Kind::SendMessage(a)) => SendOutcome::Acked {
                seq: a.seq,
                server_time_ms: if a.server_time_ms > 0 {
                    a.server_time_ms
                } else {
                    now_ms
                },
                change_version: a.change_version,
            },
            _ => SendOutcome::Failed(ApiError::new(
                codes::ERR_PARSE_RESPONSE,
                "send answer without SendMessageResp",
            )),
        },
        Err(e) if is_transient(e.code) => SendOutcome::Retry,
        Err(e) => SendOutcome::Failed(e),
    }
}

/// The outbox messages on the wire on the current connection.
#[derive(Debug, Default)]
pub struct InFlight {
    ids: HashSet<String>,
}

impl InFlight {
    /// Whether `id` should be sent now (not already on the wire); marks it sent.
    pub fn begin(&mut self, id: &str) -> bool {
        self.ids.insert(id.to_owned())
    }

    /// The answer for `id` arrived (or the request failed).
    pub fn end(&mut self, id: &str) {
        self.ids.remove(id);
    }

    /// A new connection: nothing is on the wire any more; everything unacked goes again.
    pub fn reset(&mut self) {
        self.ids.clear();
    }

    /// Whether `id` is on the wire now.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(seq: u64, t: i64) -> Result<pb::Response, ApiError> {
        Ok(pb::Response {
            code: 0,
            desc: String::new(),
            kind: Some(response::Kind::SendMessage(pb::SendMessageResp {
                msg_id: "m".into(),
                seq,
                server_time_ms: t,
                change_version: seq * 10,
            })),
        })
    }

    #[test]
    fn answers_classify() {
        assert_eq!(
            classify(ack(7, 1000), 5),
            SendOutcome::Acked {
                seq: 7,
                server_time_ms: 1000,
                change_version: 70
            }
        );
        assert_eq!(
            classify(ack(0, 0), 5),
            SendOutcome::Acked {
                seq: 0,
                server_time_ms: 5,
                change_version: 0
            }
        );
        let disc = ApiError::new(codes::ERR_NET_DISCONNECT, "down");
        assert_eq!(classify(Err(disc), 0), SendOutcome::Retry);
        let timeout = ApiError::new(codes::ERR_REQUEST_TIMEOUT, "slow");
        assert_eq!(classify(Err(timeout), 0), SendOutcome::Retry);
        let refused = ApiError::new(codes::ERR_SVR_GROUP_PERMISSION_DENIED, "not a member");
        assert_eq!(
            classify(Err(refused.clone()), 0),
            SendOutcome::Failed(refused)
        );
        let big = ApiError::new(codes::ERR_SVR_MSG_TOO_LARGE, "big");
        assert!(matches!(classify(Err(big), 0), SendOutcome::Failed(_)));
    }

    #[test]
    fn in_flight_sends_each_once_per_connection() {
        let mut f = InFlight::default();
        assert!(f.begin("a"));
        assert!(!f.begin("a"));
        assert!(f.begin("b"));
        f.end("a");
        assert!(f.begin("a"));
        f.reset();
        assert!(f.begin("a") && f.begin("b"));
    }
}
