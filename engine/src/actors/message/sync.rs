//! The post-login sync driver: from the per-user change cursor (the conversation actor's,
//! [`crate::actors::conversation::change_cursor`]), one page of changed conversations at a time,
//! catch-up pulls planned by `sync_plan`, the cursor moved past the page once it is applied.

use actix::prelude::*;
use chime_proto::pb::{self, request, response};
use chime_proto::{codes, ids};
use serde_json::json;

use super::{MessageActor, mailbox};
use crate::actors::connection::{ConnectionActor, Rpc};
use crate::actors::conversation::ApplyStates;
use crate::actors::db_err;
use crate::actors::group::SetJoined;
use crate::store::keys;
use crate::sync_plan::{self, Pull};
use crate::{ApiError, Result};

/// Conversations per sync page.
pub(crate) const SYNC_PAGE: u32 = 100;

impl MessageActor {
    pub(crate) fn start_sync(&mut self, ctx: &mut Context<Self>) {
        if self.syncing {
            self.sync_again = true;
            return;
        }
        let Some(peers) = self.peers.clone() else {
            return;
        };
        self.syncing = true;
        self.sync_again = false;
        self.shared.events.emit("on_sync_server_start", json!({}));
        let me = ctx.address();
        actix::spawn(async move {
            let r = run_sync(me.clone(), peers.conn, peers.conv).await;
            me.do_send(SyncDone(r));
        });
    }
}

pub(crate) async fn run_sync(
    me: Addr<MessageActor>,
    conn: Addr<ConnectionActor>,
    conversations: Addr<crate::actors::conversation::ConversationActor>,
) -> Result<()> {
    let mut first = true;
    loop {
        // The change cursor is the conversation actor's (it advances it over live changes too).
        let cursor = conversations
            .send(crate::actors::conversation::SyncStart { first })
            .await
            .map_err(mailbox)??;
        first = false;
        let known_groups = me.send(SyncBegin).await.map_err(mailbox)??;
        let resp = conn
            .send(Rpc(request::Kind::Sync(pb::SyncReq {
                cursor,
                limit: SYNC_PAGE,
                known_groups,
            })))
            .await
            .map_err(mailbox)??;
        let Some(response::Kind::Sync(page)) = resp.kind else {
            return Err(ApiError::new(
                codes::ERR_PARSE_RESPONSE,
                "sync answer without SyncResp",
            ));
        };
        let (next, has_more) = (page.cursor, page.has_more);
        let pulls = me.send(SyncPage(page)).await.map_err(mailbox)??;
        for (conv, pull) in pulls {
            let resp = conn
                .send(Rpc(request::Kind::PullMessages(pb::PullMessagesReq {
                    conv: Some(conv.clone()),
                    from_seq: pull.from,
                    to_seq: pull.to,
                    limit: u32::try_from(pull.limit).unwrap_or(u32::MAX),
                    newest_first: true,
                    from_time_ms: 0,
                    to_time_ms: 0,
                })))
                .await
                .map_err(mailbox)??;
            let Some(response::Kind::PullMessages(p)) = resp.kind else {
                return Err(ApiError::new(codes::ERR_PARSE_RESPONSE, "pull answer"));
            };
            me.send(Pulled {
                conv,
                resp: p,
                live: true,
            })
            .await
            .map_err(mailbox)??;
        }
        // The page's conversation states and messages are written before the cursor moves past
        // them, in the same batch (the conversation actor has them queued before this).
        conversations
            .send(crate::actors::conversation::SyncCommitted {
                cursor: next,
                last: !has_more,
            })
            .await
            .map_err(mailbox)??;
        if !has_more {
            return Ok(());
        }
    }
}

/// Start of one sync page: answers the newest seq held of each joined group (`known_groups`).
#[derive(Message)]
#[rtype(result = "Result<Vec<pb::ConvSeq>>")]
pub(crate) struct SyncBegin;

impl Handler<SyncBegin> for MessageActor {
    type Result = Result<Vec<pb::ConvSeq>>;
    fn handle(&mut self, _: SyncBegin, _: &mut Context<Self>) -> Self::Result {
        let store = self.acct()?.store.clone();
        let (lo, hi) = keys::table_bounds(keys::table::GROUP);
        let mut known = Vec::new();
        for (k, _) in store.scan(&lo, &hi, false, usize::MAX).map_err(db_err)? {
            let gid = String::from_utf8_lossy(&k[1..]).into_owned();
            let max_seq = self.ranges(&format!("group_{gid}"))?.max();
            known.push(pb::ConvSeq {
                conv: Some(pb::ConvRef {
                    conv_type: pb::ConvType::Group as i32,
                    target: gid,
                }),
                max_seq,
            });
        }
        Ok(known)
    }
}

/// One sync page: applied to conversations; answers the pulls to make.
#[derive(Message)]
#[rtype(result = "Result<Vec<(pb::ConvRef, Pull)>>")]
pub(crate) struct SyncPage(pb::SyncResp);

impl Handler<SyncPage> for MessageActor {
    type Result = Result<Vec<(pb::ConvRef, Pull)>>;
    fn handle(&mut self, msg: SyncPage, _: &mut Context<Self>) -> Self::Result {
        let page = msg.0;
        let mut pulls = Vec::new();
        for s in &page.conversations {
            let Some(c) = &s.conv else { continue };
            let ranges = self.ranges(&ids::conversation_id(c))?;
            for p in sync_plan::plan_catch_up(
                &ranges,
                s.min_seq,
                s.max_seq,
                sync_plan::EAGER_PULL_PER_CONVERSATION,
            ) {
                pulls.push((c.clone(), p));
            }
        }
        if let Some(p) = &self.peers {
            if !page.joined_groups.is_empty() || page.cursor > 0 {
                p.group.do_send(SetJoined(page.joined_groups.clone()));
            }
            p.conv
                .do_send(ApplyStates(page.conversations, page.user_settings));
        }
        Ok(pulls)
    }
}

/// Messages pulled from the server.
#[derive(Message)]
#[rtype(result = "Result<usize>")]
pub(crate) struct Pulled {
    pub(crate) conv: pb::ConvRef,
    pub(crate) resp: pb::PullMessagesResp,
    pub(crate) live: bool,
}

impl Handler<Pulled> for MessageActor {
    type Result = AtomicResponse<Self, Result<usize>>;
    fn handle(&mut self, mut msg: Pulled, _: &mut Context<Self>) -> Self::Result {
        // Received text goes through the content filters first (`crate::filter`), the actor
        // waiting for them (atomic) so that pages are still taken in in order.
        let screening = crate::filter::screen_incoming(self, &msg.resp.messages);
        let take = move |act: &mut Self, msg: Pulled| {
            let conv = ids::conversation_id(&msg.conv);
            let covered = Some((conv, msg.resp.covered_from, msg.resp.covered_to));
            act.ingest(&msg.resp.messages, msg.live, covered)
                .map(|v| v.len())
        };
        match screening {
            None => {
                let taken = take(self, msg);
                AtomicResponse::new(Box::pin(fut::ready(taken)))
            }
            Some(screening) => AtomicResponse::new(Box::pin(screening.into_actor(self).map(
                move |screened, act, _| {
                    msg.resp.messages = screened;
                    take(act, msg)
                },
            ))),
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SyncDone(Result<()>);

impl Handler<SyncDone> for MessageActor {
    type Result = ();
    fn handle(&mut self, msg: SyncDone, ctx: &mut Context<Self>) {
        self.syncing = false;
        match msg.0 {
            Ok(()) => self.shared.events.emit("on_sync_server_finish", json!({})),
            Err(e) => {
                tracing::info!("sync failed: {e}");
                self.shared.events.emit("on_sync_server_failed", json!({}));
            }
        }
        if self.sync_again && self.online.is_some() {
            self.start_sync(ctx);
        }
    }
}

/// A sync now, if online (the conversation actor saw a version gap that live changes did not
/// fill: [`crate::actors::conversation::change_cursor`]).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SyncNow;

impl Handler<SyncNow> for MessageActor {
    type Result = ();
    fn handle(&mut self, _: SyncNow, ctx: &mut Context<Self>) {
        if self.acct.is_some() && self.online.is_some() {
            self.start_sync(ctx);
        }
    }
}
