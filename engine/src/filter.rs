//! The content filter of the send path (issue 5): before a message enters the outbox, every
//! loaded content-filter plugin judges its text — text elems (which carry the text of an @
//! message too) and custom elems' `description` — in load order, each seeing the previous one's
//! output. A replaced text is what is stored, sent and answered to the sender ("the sender sees
//! what was sent"); a blocked text fails the send with 80001 and stores nothing. An edit
//! (`modify_message`) is screened the same way before it leaves ([`screen_message_json`]), so a
//! sent message cannot be edited into what the filter would have refused.
//!
//! Which pieces a plugin acts on is the plugin's business: the engine hands it every piece with
//! its kind (`text` or `custom_description`), and e.g. the profanity filter passes descriptions
//! unless its config says `filter_custom_description`.
//!
//! A send being judged can be cancelled (`cancel_send_message`, [`cancel_screening`]): the
//! verdict is then dropped and the send answers 8021, having stored and sent nothing.
//!
//! **Never on the actor.** Plugin calls run on the plugin host's call threads with a timeout; the
//! MessageActor only waits for the verdict as a future ([`screen_send`]), so it keeps serving
//! other messages meanwhile. A plugin that fails, panics or times out degrades only the
//! filtering: the piece goes on as it was (logged as a warning; after repeated failures the host
//! disables the plugin, see `get_loaded_plugins`).
//!
//! The pieces and the way verdicts are written back ([`pieces`], [`apply`]) are plain functions,
//! tested without plugins; the end-to-end behaviour is tested with real plugins in
//! `tests/tests/it/plugins.rs`.

use actix::prelude::*;
use chime_plugin_api::host::ContentFilterPlugin;
use chime_plugin_api::{ContentKind, Direction, FilterOutcome};
use chime_proto::{codes, pb};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::actors::message::{MessageActor, SendParams};
use crate::model::{StoredMessage, elem_kind};
use crate::plugins::Plugins;
use crate::{ApiError, Result, codec};

/// One piece of text of a message that a filter judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Index of the elem in the message.
    pub elem: usize,
    /// What the text is.
    pub content: ContentKind,
    /// The text (after the filters that already ran).
    pub text: String,
}

/// The pieces of `m` a content filter judges: each non-empty text elem and each non-empty custom
/// description, in elem order.
pub fn pieces(m: &StoredMessage) -> Vec<Piece> {
    m.elems
        .iter()
        .enumerate()
        .filter_map(|(elem, e)| match e.kind {
            elem_kind::TEXT if !e.text.is_empty() => Some(Piece {
                elem,
                content: ContentKind::Text,
                text: e.text.clone(),
            }),
            elem_kind::CUSTOM if !e.description.is_empty() => Some(Piece {
                elem,
                content: ContentKind::CustomDescription,
                text: e.description.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Writes judged pieces back into `m`.
pub fn apply(m: &mut StoredMessage, judged: &[Piece]) {
    for piece in judged {
        let Some(e) = m.elems.get_mut(piece.elem) else {
            continue;
        };
        match piece.content {
            ContentKind::Text => e.text.clone_from(&piece.text),
            ContentKind::CustomDescription => e.description.clone_from(&piece.text),
            ContentKind::Other(_) => {}
        }
    }
}

/// The error of a blocked text (api.md §6: 80001), naming the plugin and its reason.
pub fn blocked(plugin: &str, reason: &str) -> ApiError {
    let desc = if reason.is_empty() {
        format!("content blocked by the content filter {plugin}")
    } else {
        format!("blocked by {plugin}: {reason}")
    };
    ApiError::new(codes::ERR_CONTENT_BLOCKED, desc)
}

/// Runs every filter over every piece (off the caller's thread, see the module doc). Answers
/// the judged pieces, or 80001 at the first block. A failing filter leaves the piece as it was.
pub async fn judge(
    filters: &[ContentFilterPlugin],
    mut pieces: Vec<Piece>,
    direction: Direction,
) -> Result<Vec<Piece>> {
    for piece in &mut pieces {
        for filter in filters {
            match filter.filter(&piece.text, direction, piece.content).await {
                Ok(FilterOutcome::Pass) => {}
                Ok(FilterOutcome::Replaced(text)) => {
                    tracing::debug!(plugin = %filter.info().name, elem = piece.elem, "text replaced");
                    piece.text = text;
                }
                Ok(FilterOutcome::Blocked { reason }) => {
                    let name = filter.info().name;
                    tracing::info!(plugin = %name, elem = piece.elem, "text blocked: {reason}");
                    return Err(blocked(&name, &reason));
                }
                Err(error) => {
                    tracing::warn!("content filter skipped: {error}");
                }
            }
        }
    }
    Ok(pieces)
}

/// The pieces of a message object (api.md JSON) a content filter judges: each non-empty `text`
/// of a text elem and `description` of a custom elem, by index in `elem_list`.
pub fn json_pieces(message: &Value) -> Vec<Piece> {
    let Some(elems) = message.get("elem_list").and_then(Value::as_array) else {
        return Vec::new();
    };
    elems
        .iter()
        .enumerate()
        .filter_map(|(elem, e)| {
            let (content, field) = match e.get("elem_type").and_then(Value::as_str) {
                Some("text") => (ContentKind::Text, "text"),
                Some("custom") => (ContentKind::CustomDescription, "description"),
                _ => return None,
            };
            let text = e
                .get(field)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())?;
            Some(Piece {
                elem,
                content,
                text: text.to_owned(),
            })
        })
        .collect()
}

/// Writes judged pieces back into a message object.
pub fn apply_json(message: &mut Value, judged: &[Piece]) {
    for piece in judged {
        let field = match piece.content {
            ContentKind::Text => "text",
            ContentKind::CustomDescription => "description",
            ContentKind::Other(_) => continue,
        };
        if let Some(e) = message
            .get_mut("elem_list")
            .and_then(|l| l.get_mut(piece.elem))
            .and_then(Value::as_object_mut)
        {
            e.insert(field.to_owned(), Value::String(piece.text.clone()));
        }
    }
}

/// Screens a message object (an edit of `modify_message`) through the engine's content filters,
/// off the actors: the judged object, or 80001 if a filter blocks it.
pub async fn screen_message_json(plugins: &Plugins, mut message: Value) -> Result<Value> {
    let filters = plugins.content_filters();
    let found = json_pieces(&message);
    if filters.is_empty() || found.is_empty() {
        return Ok(message);
    }
    let judged = judge(&filters, found, Direction::Outgoing).await?;
    apply_json(&mut message, &judged);
    Ok(message)
}

/// The answer of a send cancelled by `cancel_send_message` (8021).
pub fn cancelled() -> ApiError {
    ApiError::new(codes::ERR_SEND_CANCELLED, "cancelled")
}

/// `cancel_send_message` of a send the content filters are judging: takes it out of
/// screening, so that the send answers [`cancelled`] when the verdict comes instead of going
/// on. `false` when `msg_id` is not being screened.
pub fn cancel_screening(act: &mut MessageActor, msg_id: &str) -> bool {
    act.screening.remove(msg_id)
}

/// The pieces of a received message a content filter judges (as [`pieces`], on the wire form).
pub fn wire_pieces(m: &pb::Message) -> Vec<Piece> {
    m.elems
        .iter()
        .enumerate()
        .filter_map(|(elem, e)| match &e.content {
            Some(pb::elem::Content::Text(t)) if !t.text.is_empty() => Some(Piece {
                elem,
                content: ContentKind::Text,
                text: t.text.clone(),
            }),
            Some(pb::elem::Content::Custom(c)) if !c.description.is_empty() => Some(Piece {
                elem,
                content: ContentKind::CustomDescription,
                text: c.description.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Writes judged pieces back into a received message.
pub fn apply_wire(m: &mut pb::Message, judged: &[Piece]) {
    for piece in judged {
        match m.elems.get_mut(piece.elem).and_then(|e| e.content.as_mut()) {
            Some(pb::elem::Content::Text(t)) if piece.content == ContentKind::Text => {
                t.text.clone_from(&piece.text);
            }
            Some(pb::elem::Content::Custom(c))
                if piece.content == ContentKind::CustomDescription =>
            {
                c.description.clone_from(&piece.text);
            }
            _ => {}
        }
    }
}

/// `text` masked: every character but whitespace becomes `*` (what a block of received text
/// turns into: it was already sent, so it is masked, never dropped).
pub fn mask(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_whitespace() { c } else { '*' })
        .collect()
}

/// Runs every filter over every piece of received text ([`Direction::Incoming`]), in load order.
/// Never fails: a replacement is kept, a block masks the whole piece ([`mask`]), a failing
/// filter leaves the piece as it was.
pub async fn judge_incoming(filters: &[ContentFilterPlugin], mut pieces: Vec<Piece>) -> Vec<Piece> {
    for piece in &mut pieces {
        for filter in filters {
            match filter
                .filter(&piece.text, Direction::Incoming, piece.content)
                .await
            {
                Ok(FilterOutcome::Pass) => {}
                Ok(FilterOutcome::Replaced(text)) => piece.text = text,
                Ok(FilterOutcome::Blocked { .. }) => piece.text = mask(&piece.text),
                Err(error) => tracing::warn!("content filter skipped on received text: {error}"),
            }
        }
    }
    pieces
}

/// The received messages `msgs` as the content filters leave them, when there is anything to
/// screen: text of others' messages (own messages were screened on their way out) while a
/// content filter is loaded. `None`: take `msgs` as they are. Each plugin decides whether it
/// acts on incoming text (the profanity filter: its `filter_incoming` config).
pub fn screen_incoming(
    act: &MessageActor,
    msgs: &[pb::Message],
) -> Option<impl std::future::Future<Output = Vec<pb::Message>> + use<>> {
    let filters = filters_of(act);
    if filters.is_empty() {
        return None;
    }
    let me = act
        .acct
        .as_ref()
        .map(|a| a.user.clone())
        .unwrap_or_default();
    let found: Vec<(usize, Vec<Piece>)> = msgs
        .iter()
        .enumerate()
        .filter(|(_, m)| m.sender != me)
        .map(|(i, m)| (i, wire_pieces(m)))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    if found.is_empty() {
        return None;
    }
    let mut msgs = msgs.to_vec();
    Some(async move {
        for (i, pieces) in found {
            let judged = judge_incoming(&filters, pieces).await;
            if let Some(m) = msgs.get_mut(i) {
                apply_wire(m, &judged);
            }
        }
        msgs
    })
}

/// The loaded content filters of the actor's engine.
fn filters_of(act: &MessageActor) -> Vec<ContentFilterPlugin> {
    act.peers
        .as_ref()
        .map(|peers| peers.plugins.content_filters())
        .unwrap_or_default()
}

/// What the send path does next, given by the MessageActor: validate, store in the outbox and
/// transmit, answering a receiver of the ack.
pub type Prepare = fn(
    &mut MessageActor,
    SendParams,
    &mut Context<MessageActor>,
) -> Result<oneshot::Receiver<Result<Value>>>;

/// Awaits the ack of a prepared send.
async fn acked(prepared: Result<oneshot::Receiver<Result<Value>>>) -> Result<Value> {
    match prepared {
        Ok(rx) => rx
            .await
            .unwrap_or_else(|_| Err(ApiError::new(codes::ERR_INTERRUPTED, "interrupted"))),
        Err(e) => Err(e),
    }
}

/// The MessageActor's `send_message`: screens the message's text through the content filters,
/// then hands it to `prepare`. Without filters (or text) `prepare` runs at once, as if there were
/// no filter. Otherwise the verdict is awaited as a future of the actor; the judged message is
/// put back among the created messages under its msg_id, where `prepare` takes it from.
pub fn screen_send(
    act: &mut MessageActor,
    mut p: SendParams,
    ctx: &mut Context<MessageActor>,
    prepare: Prepare,
) -> ResponseActFuture<MessageActor, Result<Value>> {
    let filters = filters_of(act);
    if filters.is_empty() {
        let prepared = prepare(act, p, ctx);
        return Box::pin(acked(prepared).into_actor(act));
    }
    let given_id = p
        .message
        .get("msg_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let created = given_id
        .as_deref()
        .and_then(|id| act.created.get(id))
        .cloned();
    let mut m = match created {
        Some(m) => m,
        None => match codec::message_from_json(&p.message) {
            Ok(m) => m,
            // `prepare` reports the malformed message exactly as without filters.
            Err(_) => {
                let prepared = prepare(act, p, ctx);
                return Box::pin(acked(prepared).into_actor(act));
            }
        },
    };
    let found = pieces(&m);
    if found.is_empty() {
        let prepared = prepare(act, p, ctx);
        return Box::pin(acked(prepared).into_actor(act));
    }
    if m.msg_id.is_empty() {
        m.msg_id = crate::actors::message::new_msg_id();
    }
    let msg_id = m.msg_id.clone();
    if let Some(obj) = p.message.as_object_mut() {
        obj.insert("msg_id".to_owned(), Value::String(msg_id.clone()));
    }
    act.screening.insert(msg_id.clone());
    let judging = async move { judge(&filters, found, Direction::Outgoing).await };
    Box::pin(judging.into_actor(act).then(move |verdict, act, ctx| {
        let prepared = if act.screening.remove(&msg_id) {
            verdict.and_then(|judged| {
                apply(&mut m, &judged);
                act.created.insert(msg_id, m);
                prepare(act, p, ctx)
            })
        } else {
            // `cancel_send_message` came while the filters judged: nothing was stored or sent.
            act.created.remove(&msg_id);
            Err(cancelled())
        };
        acked(prepared).into_actor(act)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StoredElem;

    fn message() -> StoredMessage {
        StoredMessage {
            elems: vec![
                codec::text_elem("hello darn world"),
                codec::custom_elem(b"{}".to_vec(), "a darn card".into(), String::new()),
                codec::custom_elem(b"{}".to_vec(), String::new(), String::new()),
                codec::text_elem(""),
                StoredElem {
                    kind: elem_kind::GROUP_TIPS,
                    text: "tips are not user text".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn pieces_are_the_texts_and_custom_descriptions_in_elem_order() {
        assert_eq!(
            pieces(&message()),
            [
                Piece {
                    elem: 0,
                    content: ContentKind::Text,
                    text: "hello darn world".into()
                },
                Piece {
                    elem: 1,
                    content: ContentKind::CustomDescription,
                    text: "a darn card".into()
                },
            ]
        );
        assert!(pieces(&StoredMessage::default()).is_empty());
    }

    #[test]
    fn judged_pieces_are_written_back_to_their_elems() {
        let mut m = message();
        let mut judged = pieces(&m);
        judged[0].text = "hello **** world".into();
        judged[1].text = "a **** card".into();
        apply(&mut m, &judged);
        assert_eq!(m.elems[0].text, "hello **** world");
        assert_eq!(m.elems[1].description, "a **** card");
        assert_eq!(m.elems[1].data, b"{}");
        assert_eq!(m.elems[4].text, "tips are not user text");
        // A stale index (the message changed) is ignored rather than panicking.
        apply(
            &mut m,
            &[Piece {
                elem: 99,
                content: ContentKind::Text,
                text: "x".into(),
            }],
        );
        assert_eq!(m.elems.len(), 5);
    }

    #[test]
    fn message_objects_give_and_take_the_same_pieces() {
        let mut edit = serde_json::json!({
            "msg_id": "m1",
            "elem_list": [
                {"elem_type": "text", "text": "darn it"},
                {"elem_type": "custom", "data": "{}", "description": "darn card"},
                {"elem_type": "custom", "data": "{}"},
                {"elem_type": "face", "index": 1},
                {"elem_type": "text", "text": ""},
            ]
        });
        let mut found = json_pieces(&edit);
        assert_eq!(
            found,
            [
                Piece {
                    elem: 0,
                    content: ContentKind::Text,
                    text: "darn it".into()
                },
                Piece {
                    elem: 1,
                    content: ContentKind::CustomDescription,
                    text: "darn card".into()
                },
            ]
        );
        found[0].text = "**** it".into();
        found[1].text = "**** card".into();
        apply_json(&mut edit, &found);
        assert_eq!(edit["elem_list"][0]["text"], "**** it");
        assert_eq!(edit["elem_list"][1]["description"], "**** card");
        assert_eq!(edit["elem_list"][1]["data"], "{}");
        assert_eq!(edit["msg_id"], "m1");
        assert!(json_pieces(&serde_json::json!({"msg_id": "x"})).is_empty());
    }

    #[test]
    fn a_block_is_80001_naming_the_plugin() {
        assert_eq!(
            blocked("profanity-filter", "matched a blocked term"),
            ApiError::new(80001, "blocked by profanity-filter: matched a blocked term")
        );
        assert_eq!(
            blocked("p", "").desc,
            "content blocked by the content filter p"
        );
    }
}
