//! Resumable upload sessions, persisted on disk so that an upload survives a dropped connection
//! and a server restart.
//!
//! A session is named by its owner and the client's `resume_key` (the engine uses
//! `<msg_id>/<elem_index>/<variant>`): its id is a hash of `(app, user, resume_key)`, so asking
//! again with the same key after a crash on either side finds the same session without any
//! index. Each session is two files under `<store_dir>/uploads/`: `<id>.json` (what was
//! declared, and the uuid once complete) and `<id>.part` (the bytes so far; its length is the
//! offset to resume from). A completed session is kept (without its bytes) until it expires, so
//! that a client that crashed before it learned the uuid gets it by asking again.
//!
//! Calls block (small file operations); the HTTP layer runs them on the blocking pool. Writers
//! of one session are serialized by [`Sessions::lock`].

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One upload session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The session id (hex of the key hash).
    pub upload_id: String,
    /// The SDKAppID of the owner.
    pub app: u64,
    /// The owner.
    pub user: String,
    /// The client's resume key.
    pub resume_key: String,
    /// Declared size in bytes.
    pub size: u64,
    /// Declared MIME type.
    pub content_type: String,
    /// Declared file name (may be empty).
    #[serde(default)]
    pub file_name: String,
    /// When the session began (ms since the epoch).
    pub created_ms: i64,
    /// The stored file's uuid, once complete.
    #[serde(default)]
    pub uuid: Option<String>,
}

/// What a client declares when it begins (or resumes) an upload: the body of
/// `POST /files/uploads`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Declared {
    /// The client's key for this upload (the same key resumes it).
    pub resume_key: String,
    /// The file's size in bytes.
    pub size: u64,
    /// The file's MIME type.
    pub content_type: String,
    /// The file's name, if any.
    #[serde(default)]
    pub file_name: Option<String>,
}

/// The upload sessions of one file store.
#[derive(Debug)]
pub struct Sessions {
    dir: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Whether `id` is a well-formed session id (so that it can name a file safely).
pub fn is_valid_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Sessions {
    /// Sessions under `store_dir/uploads` (created).
    pub fn open(store_dir: &Path) -> io::Result<Self> {
        let dir = store_dir.join("uploads");
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// The session id of `(app, user, resume_key)`.
    pub fn upload_id(app: u64, user: &str, resume_key: &str) -> String {
        let mut h = Sha256::new();
        h.update(app.to_be_bytes());
        h.update((user.len() as u64).to_be_bytes());
        h.update(user.as_bytes());
        h.update(resume_key.as_bytes());
        let digest = h.finalize();
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The lock serializing writers of session `id`.
    pub fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(id.to_owned()).or_default())
    }

    fn forget_lock(&self, id: &str) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.remove(id);
    }

    fn json_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// The file holding the bytes received so far.
    pub fn part_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.part"))
    }

    /// Session `id`, if any.
    pub fn load(&self, id: &str) -> io::Result<Option<Session>> {
        if !is_valid_upload_id(id) {
            return Ok(None);
        }
        match std::fs::read(self.json_path(id)) {
            Ok(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `session` atomically (temp file, fsync, rename).
    pub fn save(&self, session: &Session) -> io::Result<()> {
        let path = self.json_path(&session.upload_id);
        let tmp = path.with_extension("json.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            io::Write::write_all(&mut f, &serde_json::to_vec(session)?)?;
            f.sync_all()?;
        }
        std::fs::rename(tmp, path)
    }

    /// Bytes received so far by session `session` (its size once complete).
    pub fn offset(&self, session: &Session) -> io::Result<u64> {
        if session.uuid.is_some() {
            return Ok(session.size);
        }
        match std::fs::metadata(self.part_path(&session.upload_id)) {
            Ok(m) => Ok(m.len().min(session.size)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// The session of `(app, user, resume_key)` for a file of `size` and `content_type`: the
    /// existing one when it declared the same size and type (resumed, or complete), else a
    /// fresh one (a different file under the same key starts over).
    pub fn begin(
        &self,
        app: u64,
        user: &str,
        declared: &Declared,
        now_ms: i64,
    ) -> io::Result<Session> {
        let (resume_key, size, content_type) =
            (&declared.resume_key, declared.size, &declared.content_type);
        let file_name = declared.file_name.as_deref().unwrap_or_default();
        let upload_id = Self::upload_id(app, user, resume_key);
        if let Some(existing) = self.load(&upload_id)?
            && existing.app == app
            && existing.user == user
            && existing.resume_key == *resume_key
            && existing.size == size
            && existing.content_type == *content_type
        {
            return Ok(existing);
        }
        remove_if_exists(&self.part_path(&upload_id))?;
        let session = Session {
            upload_id,
            app,
            user: user.to_owned(),
            resume_key: resume_key.to_owned(),
            size,
            content_type: content_type.to_owned(),
            file_name: file_name.to_owned(),
            created_ms: now_ms,
            uuid: None,
        };
        self.save(&session)?;
        Ok(session)
    }

    /// Drops session `id` and its bytes, keeping its lock (for a caller that holds it and
    /// begins the session again).
    pub fn discard(&self, id: &str) -> io::Result<()> {
        remove_if_exists(&self.part_path(id))?;
        remove_if_exists(&self.json_path(id))
    }

    /// Drops session `id`, its bytes and its lock.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        self.discard(id)?;
        self.forget_lock(id);
        Ok(())
    }

    /// Every session on disk (unreadable ones are skipped with a warning).
    pub fn list(&self) -> io::Result<Vec<Session>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            match self.load(id) {
                Ok(Some(s)) => out.push(s),
                Ok(None) => {}
                Err(e) => tracing::warn!(upload_id = id, "unreadable upload session: {e}"),
            }
        }
        Ok(out)
    }
}

/// Removes `path`; a missing file is not an error.
pub fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(size: u64) -> Declared {
        Declared {
            resume_key: "m1/0/origin".into(),
            size,
            content_type: "image/png".into(),
            file_name: Some("a.png".into()),
        }
    }

    #[test]
    fn same_key_same_session_and_offset_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = Sessions::open(dir.path()).unwrap();
        let s = sessions.begin(1, "alice", &declared(10), 5).unwrap();
        assert!(is_valid_upload_id(&s.upload_id));
        assert_eq!(sessions.offset(&s).unwrap(), 0);
        std::fs::write(sessions.part_path(&s.upload_id), b"1234").unwrap();
        // Reopened (a restart): the same key finds the same session at its offset.
        let sessions = Sessions::open(dir.path()).unwrap();
        let again = sessions.begin(1, "alice", &declared(10), 9).unwrap();
        assert_eq!(again, s);
        assert_eq!(sessions.offset(&again).unwrap(), 4);
        // Another user or app with the same key is another session.
        assert_ne!(Sessions::upload_id(1, "bob", "m1/0/origin"), s.upload_id);
        assert_ne!(Sessions::upload_id(2, "alice", "m1/0/origin"), s.upload_id);
        // A different file under the same key starts over.
        let other = sessions.begin(1, "alice", &declared(11), 9).unwrap();
        assert_eq!(sessions.offset(&other).unwrap(), 0);
        assert_eq!(sessions.list().unwrap(), vec![other.clone()]);
        // Complete: the offset is the size.
        let done = Session {
            uuid: Some("u".into()),
            ..other
        };
        sessions.save(&done).unwrap();
        assert_eq!(sessions.offset(&done).unwrap(), 11);
        sessions.remove(&done.upload_id).unwrap();
        assert!(sessions.load(&done.upload_id).unwrap().is_none());
        assert!(sessions.load("../../etc").unwrap().is_none());
    }
}
