//! JSON-RPC 2.0 framing for the daemon: parsing one input line into a request, a notification or
//! an immediate error answer, and building the answer and notification lines.
//!
//! Kept free of I/O so every framing rule is unit-tested: a malformed line answers 6027 with a
//! null id, a non-object or a missing method 6017 (our codes, never JSON-RPC's -327xx), a call
//! without an `id` is a notification that runs without an answer. A daemon hosting several
//! engines names the one meant by a top-level `"engine"` member (absent = [`DEFAULT_ENGINE`]);
//! every event notification carries the name of the engine it came from the same way.

use chime_engine::ApiError;
use chime_proto::codes;
use serde_json::{Map, Value, json};

/// The engine a request without an `"engine"` member addresses.
pub const DEFAULT_ENGINE: &str = "default";

/// What one input line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A call expecting an answer with this `id` (any JSON value, `null` included).
    Request {
        /// The caller's id, echoed in the answer.
        id: Value,
        /// The engine addressed.
        engine: String,
        /// The method name.
        method: String,
        /// The params object (`{}` when absent).
        params: Value,
    },
    /// A call without `id`: run it, answer nothing.
    Notification {
        /// The engine addressed.
        engine: String,
        /// The method name.
        method: String,
        /// The params object (`{}` when absent).
        params: Value,
    },
    /// The line cannot be run; answer this line at once.
    Invalid(String),
}

/// Parses one line of input. Blank lines give `None`.
pub fn parse_line(line: &str) -> Option<Incoming> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            let err = ApiError::new(codes::ERR_INVALID_JSON, format!("malformed JSON: {e}"));
            return Some(Incoming::Invalid(error_line(&Value::Null, &err)));
        }
    };
    let Value::Object(mut obj) = value else {
        let err = ApiError::invalid_param("a JSON-RPC request must be an object");
        return Some(Incoming::Invalid(error_line(&Value::Null, &err)));
    };
    let id = obj.remove("id");
    let answer_id = id.clone().unwrap_or(Value::Null);
    let invalid = |desc: &str| {
        let err = ApiError::invalid_param(desc);
        Some(Incoming::Invalid(error_line(&answer_id, &err)))
    };
    match obj.get("jsonrpc") {
        None => {}
        Some(Value::String(v)) if v == "2.0" => {}
        Some(_) => return invalid("jsonrpc must be \"2.0\""),
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) if !m.is_empty() => m,
        Some(_) => return invalid("method must be a non-empty string"),
        None => return invalid("missing method"),
    };
    let engine = match obj.remove("engine") {
        None | Some(Value::Null) => DEFAULT_ENGINE.to_owned(),
        Some(Value::String(e)) if !e.is_empty() && e.len() <= 64 => e,
        Some(_) => return invalid("engine must be a name of 1 to 64 bytes"),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(p) => p,
    };
    Some(match id {
        Some(id) => Incoming::Request {
            id,
            engine,
            method,
            params,
        },
        None => Incoming::Notification {
            engine,
            method,
            params,
        },
    })
}

/// The answer line for `id`: `result` on success, `error {code, message}` on failure.
pub fn answer_line(id: &Value, outcome: &Result<Value, ApiError>) -> String {
    match outcome {
        Ok(result) => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#),
        Err(err) => error_line(id, err),
    }
}

/// An error answer line.
pub fn error_line(id: &Value, err: &ApiError) -> String {
    let error = json!({ "code": err.code, "message": err.desc });
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{error}}}"#)
}

/// The notification line for one event of the engine named `engine`.
pub fn event_line(engine: &str, name: &str, data: &Value) -> String {
    // Written by hand so that `jsonrpc` comes first on every line, as people read them.
    let method = Value::String(name.to_owned());
    let engine = Value::String(engine.to_owned());
    format!(r#"{{"jsonrpc":"2.0","method":{method},"params":{data},"engine":{engine}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(line: &str) -> Value {
        match parse_line(line) {
            Some(Incoming::Invalid(answer)) => serde_json::from_str(&answer).unwrap(),
            other => panic!("{line:?} parsed as {other:?}, expected an error answer"),
        }
    }

    #[test]
    fn a_request_keeps_its_id_method_and_params() {
        let got =
            parse_line(r#"{"jsonrpc":"2.0","id":7,"method":"login","params":{"user_id":"a"}}"#);
        assert_eq!(
            got,
            Some(Incoming::Request {
                id: json!(7),
                engine: DEFAULT_ENGINE.into(),
                method: "login".into(),
                params: json!({"user_id": "a"}),
            })
        );
    }

    #[test]
    fn string_and_null_ids_are_requests_and_absent_params_are_empty() {
        assert_eq!(
            parse_line(r#"{"jsonrpc":"2.0","id":"x","method":"get_version"}"#),
            Some(Incoming::Request {
                id: json!("x"),
                engine: DEFAULT_ENGINE.into(),
                method: "get_version".into(),
                params: json!({}),
            })
        );
        assert_eq!(
            parse_line(r#"{"id":null,"method":"get_version","params":null}"#),
            Some(Incoming::Request {
                id: Value::Null,
                engine: DEFAULT_ENGINE.into(),
                method: "get_version".into(),
                params: json!({}),
            })
        );
    }

    #[test]
    fn a_call_without_id_is_a_notification() {
        assert_eq!(
            parse_line(r#"{"jsonrpc":"2.0","method":"logout","params":{}}"#),
            Some(Incoming::Notification {
                engine: DEFAULT_ENGINE.into(),
                method: "logout".into(),
                params: json!({}),
            })
        );
    }

    #[test]
    fn the_engine_member_names_the_engine_and_must_be_a_short_string() {
        assert_eq!(
            parse_line(r#"{"jsonrpc":"2.0","id":1,"engine":"bot","method":"logout"}"#),
            Some(Incoming::Request {
                id: json!(1),
                engine: "bot".into(),
                method: "logout".into(),
                params: json!({}),
            })
        );
        let a = invalid(r#"{"jsonrpc":"2.0","id":2,"engine":7,"method":"logout"}"#);
        assert_eq!(a["error"]["code"], json!(6017));
        assert_eq!(a["id"], json!(2));
        let a = invalid(r#"{"jsonrpc":"2.0","id":3,"engine":"","method":"logout"}"#);
        assert_eq!(a["error"]["code"], json!(6017));
    }

    #[test]
    fn blank_lines_are_ignored() {
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("   \r"), None);
    }

    #[test]
    fn malformed_json_answers_6027_with_a_null_id() {
        let a = invalid(r#"{"jsonrpc":"2.0","id":1,"method":"#);
        assert_eq!(a["id"], Value::Null);
        assert_eq!(a["jsonrpc"], json!("2.0"));
        assert_eq!(a["error"]["code"], json!(6027));
    }

    #[test]
    fn non_objects_and_missing_methods_answer_6017() {
        let a = invalid("[1,2]");
        assert_eq!(a["error"]["code"], json!(6017));
        assert_eq!(a["id"], Value::Null);
        let b = invalid(r#"{"jsonrpc":"2.0","id":4}"#);
        assert_eq!(b["error"]["code"], json!(6017));
        assert_eq!(b["id"], json!(4));
        assert_eq!(b["error"]["message"], json!("missing method"));
        let c = invalid(r#"{"jsonrpc":"2.0","id":5,"method":3}"#);
        assert_eq!(c["error"]["code"], json!(6017));
        let d = invalid(r#"{"jsonrpc":"1.0","id":6,"method":"login"}"#);
        assert_eq!(d["error"]["code"], json!(6017));
        assert_eq!(d["id"], json!(6));
    }

    #[test]
    fn answers_and_events_have_the_json_rpc_shape() {
        let ok: Value =
            serde_json::from_str(&answer_line(&json!(1), &Ok(json!({"a": 1})))).unwrap();
        assert_eq!(ok, json!({"jsonrpc": "2.0", "id": 1, "result": {"a": 1}}));
        let err = ApiError::new(6014, "not logged in");
        let e: Value = serde_json::from_str(&answer_line(&json!("k"), &Err(err))).unwrap();
        assert_eq!(
            e,
            json!({"jsonrpc": "2.0", "id": "k", "error": {"code": 6014, "message": "not logged in"}})
        );
        let ev: Value =
            serde_json::from_str(&event_line("bot", "on_kicked_offline", &json!({}))).unwrap();
        assert_eq!(
            ev,
            json!({"jsonrpc": "2.0", "method": "on_kicked_offline", "params": {}, "engine": "bot"})
        );
    }
}
