//! Who may read a stored file: its record (owner, size, type, time), the conversations granted
//! access, and the checks over both.
//!
//! A file belongs to the user who uploaded it. When a message referencing it is committed, the
//! message's conversation is granted access ([`grant_message`], called from the commit
//! pipeline), provided the sender may read the file: so a forward of a received image grants
//! the new conversation, while a uuid copied from someone else's message grants nothing. A
//! download URL is then answered to the owner and to every member of a granted conversation
//! ([`check_read`]). Grants stay until the file expires (retention), even if the message is
//! later revoked or deleted: the messages already delivered keep working.
//!
//! Keys (tags in `keys.rs`): `A` app, uuid → [`FileRecord`] JSON; `B` app, uuid, conv → empty;
//! `Z` 0, created ms, app, uuid → empty (the retention index, oldest first).

use chime_proto::codes;
use chime_proto::pb;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult, StoreError};
use crate::keys::{self, Key, tag};
use crate::store::Store;
use crate::txn::Txn;

/// A stored file's record in the server's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// The object name.
    pub uuid: String,
    /// Who uploaded it.
    pub owner: String,
    /// Size in bytes.
    pub size: u64,
    /// MIME type given at upload.
    pub content_type: String,
    /// File name given at upload (may be empty).
    #[serde(default)]
    pub file_name: String,
    /// When the upload completed (ms since the epoch).
    pub created_ms: i64,
}

/// The record key of `uuid` in `app`.
pub fn record_key(app: u64, uuid: &str) -> Vec<u8> {
    Key::new(tag::FILE, app).s(uuid.as_bytes()).done()
}

/// The grant key of (`uuid`, `conv`) in `app`.
pub fn grant_key(app: u64, uuid: &str, conv: &[u8]) -> Vec<u8> {
    Key::new(tag::FILE_GRANT, app)
        .s(uuid.as_bytes())
        .s(conv)
        .done()
}

/// The retention index key of a file.
pub fn age_key(app: u64, uuid: &str, created_ms: i64) -> Vec<u8> {
    Key::new(tag::FILE_AGE, 0)
        .n(u64::try_from(created_ms).unwrap_or(0))
        .n(app)
        .s(uuid.as_bytes())
        .done()
}

/// Decodes a record.
pub fn decode_record(raw: &[u8]) -> Result<FileRecord, StoreError> {
    serde_json::from_slice(raw).map_err(|e| StoreError::Corrupt(format!("file record: {e}")))
}

/// Stages a completed upload's record and its retention index entry.
pub fn stage_record(txn: &mut Txn<'_>, app: u64, record: &FileRecord) -> ApiResult<()> {
    let value = serde_json::to_vec(record)
        .map_err(|e| ApiError::new(codes::ERR_SVR_INTERNAL, e.to_string()))?;
    txn.put(record_key(app, &record.uuid), value);
    txn.put(age_key(app, &record.uuid, record.created_ms), Vec::new());
    Ok(())
}

/// The record of `uuid`, if stored.
pub fn record(store: &dyn Store, app: u64, uuid: &str) -> Result<Option<FileRecord>, StoreError> {
    store
        .get(&record_key(app, uuid))?
        .map(|raw| decode_record(&raw))
        .transpose()
}

/// The conversations granted access to `uuid`.
pub fn granted_convs(store: &dyn Store, app: u64, uuid: &str) -> Result<Vec<Vec<u8>>, StoreError> {
    let prefix = Key::new(tag::FILE_GRANT, app).s(uuid.as_bytes());
    let prefix_len = prefix.clone().done().len();
    let (start, end) = prefix.prefix_range();
    Ok(store
        .scan(&start, &end, usize::MAX, false)?
        .into_iter()
        .filter_map(|(k, _)| {
            let rest = k.get(prefix_len..)?;
            let (&n, rest) = rest.split_first()?;
            rest.get(..n as usize).map(<[u8]>::to_vec)
        })
        .collect())
}

/// Every key of `uuid`'s bookkeeping (record, grants, retention entry), for deletion.
pub fn all_keys(
    store: &dyn Store,
    app: u64,
    record: &FileRecord,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut out = vec![
        record_key(app, &record.uuid),
        age_key(app, &record.uuid, record.created_ms),
    ];
    out.extend(
        granted_convs(store, app, &record.uuid)?
            .into_iter()
            .map(|conv| grant_key(app, &record.uuid, &conv)),
    );
    Ok(out)
}

/// Whether `user` is a member of the conversation `conv` (one of the two users of a C2C
/// conversation, a member of a group).
fn is_member(store: &dyn Store, app: u64, conv: &[u8], user: &str) -> Result<bool, StoreError> {
    Ok(match keys::parse_conv(conv) {
        Some(keys::Conv::C2c(a, b)) => a == user || b == user,
        Some(keys::Conv::Group(group)) => {
            crate::queries::member(store, app, &group, user)?.is_some()
        }
        None => false,
    })
}

/// Whether `user` may read `record`: its owner, or a member of a granted conversation.
pub fn may_read(
    store: &dyn Store,
    app: u64,
    user: &str,
    record: &FileRecord,
) -> Result<bool, StoreError> {
    if record.owner == user {
        return Ok(true);
    }
    for conv in granted_convs(store, app, &record.uuid)? {
        if is_member(store, app, &conv, user)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The record of `uuid` if `user` may read it: 7004 when there is no such file, 10007 when
/// `user` is neither its owner nor a member of a conversation it was sent to.
pub fn check_read(store: &dyn Store, app: u64, user: &str, uuid: &str) -> ApiResult<FileRecord> {
    let Some(record) = record(store, app, uuid)? else {
        return Err(ApiError::new(
            codes::ERR_FILE_NOT_FOUND,
            format!("no file {uuid}"),
        ));
    };
    if may_read(store, app, user, &record)? {
        Ok(record)
    } else {
        Err(ApiError::new(
            codes::ERR_SVR_GROUP_PERMISSION_DENIED,
            "no permission to read this file: neither its owner nor a member of a conversation \
             it was sent to",
        ))
    }
}

/// Appends the media uuids `msg` references (image sizes, sound, video and its snapshot, file,
/// and those of messages merged into it).
pub fn media_uuids(msg: &pb::Message, out: &mut Vec<String>) {
    use pb::elem::Content;
    for elem in &msg.elems {
        match &elem.content {
            Some(Content::Image(image)) => {
                out.extend(image.images.iter().map(|i| i.uuid.clone()));
            }
            Some(Content::Sound(sound)) => out.push(sound.uuid.clone()),
            Some(Content::Video(video)) => {
                out.push(video.video_uuid.clone());
                out.push(video.snapshot_uuid.clone());
            }
            Some(Content::File(file)) => out.push(file.uuid.clone()),
            Some(Content::Merger(merger)) => {
                for inner in &merger.message_list {
                    media_uuids(inner, out);
                }
            }
            _ => {}
        }
    }
    out.retain(|u| !u.is_empty());
}

/// The commit hook: grants `conv` access to every stored file `msg` references that its sender
/// may read (owner, or member of a conversation already granted). Unknown uuids (files of
/// another store, say) and files the sender may not read are left alone: the message still
/// goes out, it just grants nothing.
pub fn grant_message(
    store: &dyn Store,
    txn: &mut Txn<'_>,
    app: u64,
    conv: &[u8],
    msg: &pb::Message,
) -> ApiResult<()> {
    let mut uuids = Vec::new();
    media_uuids(msg, &mut uuids);
    if uuids.is_empty() {
        return Ok(());
    }
    uuids.sort();
    uuids.dedup();
    for uuid in uuids {
        let key = grant_key(app, &uuid, conv);
        if txn.get(&key)?.is_some() {
            continue;
        }
        // Through the transaction: a file completed in a batch still being applied counts.
        let Some(raw) = txn.get(&record_key(app, &uuid))? else {
            continue;
        };
        let record = decode_record(&raw)?;
        if may_read(store, app, &msg.sender, &record)? {
            txn.put(key, Vec::new());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    fn record(uuid: &str, owner: &str) -> FileRecord {
        FileRecord {
            uuid: uuid.into(),
            owner: owner.into(),
            size: 3,
            content_type: "image/png".into(),
            file_name: String::new(),
            created_ms: 1_000,
        }
    }

    fn image_message(sender: &str, uuids: &[&str]) -> pb::Message {
        pb::Message {
            sender: sender.into(),
            elems: vec![pb::Elem {
                content: Some(pb::elem::Content::Image(pb::ImageElem {
                    images: uuids
                        .iter()
                        .map(|u| pb::ImageInfo {
                            uuid: (*u).into(),
                            ..Default::default()
                        })
                        .collect(),
                    format: String::new(),
                })),
            }],
            ..Default::default()
        }
    }

    fn commit(store: &MemStore, f: impl FnOnce(&mut Txn<'_>)) {
        let mut txn = Txn::new(store, &[]);
        f(&mut txn);
        let staged = txn.into_staged();
        let ops: Vec<_> = staged
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        store.apply(&ops).unwrap();
    }

    #[test]
    fn grants_follow_messages_and_forwards_but_not_copied_uuids() {
        let store = MemStore::default();
        let app = 7;
        commit(&store, |txn| {
            stage_record(txn, app, &record("f1", "alice")).unwrap();
        });
        let ab = keys::c2c_conv("alice", "bob");
        let bc = keys::c2c_conv("bob", "carol");
        let cd = keys::c2c_conv("carol", "dave");
        // carol cannot read f1 yet, and a message of hers referencing it grants nothing.
        assert_eq!(
            check_read(&store, app, "carol", "f1").unwrap_err().code,
            codes::ERR_SVR_GROUP_PERMISSION_DENIED
        );
        commit(&store, |txn| {
            grant_message(&store, txn, app, &cd, &image_message("carol", &["f1"])).unwrap();
        });
        assert!(granted_convs(&store, app, "f1").unwrap().is_empty());
        // alice sends it to bob: bob may read it.
        commit(&store, |txn| {
            grant_message(
                &store,
                txn,
                app,
                &ab,
                &image_message("alice", &["f1", "nope"]),
            )
            .unwrap();
        });
        assert_eq!(check_read(&store, app, "bob", "f1").unwrap().owner, "alice");
        // bob forwards it to carol: now carol may read it too.
        commit(&store, |txn| {
            grant_message(&store, txn, app, &bc, &image_message("bob", &["f1"])).unwrap();
        });
        assert!(check_read(&store, app, "carol", "f1").is_ok());
        assert_eq!(
            check_read(&store, app, "dave", "f1").unwrap_err().code,
            codes::ERR_SVR_GROUP_PERMISSION_DENIED
        );
        assert_eq!(
            check_read(&store, app, "bob", "nope").unwrap_err().code,
            codes::ERR_FILE_NOT_FOUND
        );
        // Another app sees nothing.
        assert_eq!(
            check_read(&store, app + 1, "alice", "f1").unwrap_err().code,
            codes::ERR_FILE_NOT_FOUND
        );
        let mut convs = granted_convs(&store, app, "f1").unwrap();
        convs.sort();
        let mut expected = vec![ab, bc];
        expected.sort();
        assert_eq!(convs, expected);
        let rec = super::record(&store, app, "f1").unwrap().unwrap();
        assert_eq!(all_keys(&store, app, &rec).unwrap().len(), 4);
    }

    #[test]
    fn media_uuids_cover_every_media_elem_and_merged_messages() {
        use pb::elem::Content;
        let elem = |c| pb::Elem { content: Some(c) };
        let inner = image_message("x", &["i1", "i2"]);
        let msg = pb::Message {
            elems: vec![
                elem(Content::Sound(pb::SoundElem {
                    uuid: "s".into(),
                    ..Default::default()
                })),
                elem(Content::Video(pb::VideoElem {
                    video_uuid: "v".into(),
                    snapshot_uuid: "vs".into(),
                    ..Default::default()
                })),
                elem(Content::File(pb::FileElem {
                    uuid: "f".into(),
                    ..Default::default()
                })),
                elem(Content::Text(pb::TextElem { text: "t".into() })),
                elem(Content::Merger(pb::MergerElem {
                    message_list: vec![inner],
                    ..Default::default()
                })),
            ],
            ..Default::default()
        };
        let mut out = Vec::new();
        media_uuids(&msg, &mut out);
        assert_eq!(out, ["s", "v", "vs", "f", "i1", "i2"]);
    }
}
