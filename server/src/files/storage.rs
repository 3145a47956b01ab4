//! Where the bytes of stored files live: the [`Storage`] trait and its local-disk backend.
//!
//! The file store keeps its bookkeeping (owners, grants, retention) in the server's store and
//! only the bytes here, as immutable objects named by uuid with a little metadata (size, content
//! type), the way an object store does. So another backend (S3-compatible object storage) only
//! has to implement these four calls. Calls block: the HTTP layer runs them on the blocking pool.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a stored object carries besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// The MIME type given at upload.
    pub content_type: String,
    /// The file name given at upload (may be empty).
    #[serde(default)]
    pub file_name: String,
}

/// A readable object from an offset: its metadata and a reader positioned there.
pub struct ObjectReader {
    /// The object's metadata.
    pub meta: ObjectMeta,
    /// The bytes from the requested offset to the end.
    pub reader: Box<dyn Read + Send>,
}

/// A backend holding file objects by uuid.
pub trait Storage: Send + Sync + 'static {
    /// Stores the complete file at `source` (a file of the upload area, which the backend may
    /// move) as object `uuid`.
    fn put(&self, uuid: &str, source: &Path, meta: &ObjectMeta) -> io::Result<()>;
    /// The object's bytes from `offset`; `None` when there is no such object.
    fn read_from(&self, uuid: &str, offset: u64) -> io::Result<Option<ObjectReader>>;
    /// The object's metadata; `None` when there is no such object.
    fn meta(&self, uuid: &str) -> io::Result<Option<ObjectMeta>>;
    /// Deletes the object (no error when it is already gone).
    fn delete(&self, uuid: &str) -> io::Result<()>;
}

/// Whether `uuid` is a well-formed object name (32 lowercase hex digits), so that it can name a
/// file path safely.
pub fn is_valid_uuid(uuid: &str) -> bool {
    uuid.len() == 32
        && uuid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Objects as files under `<dir>/objects/<first two hex digits>/<uuid>` with a `<uuid>.meta`
/// JSON beside each. `put` renames the upload's file into place (same file system), so a
/// completed upload is not copied.
#[derive(Debug, Clone)]
pub struct LocalDisk {
    root: PathBuf,
}

impl LocalDisk {
    /// A backend rooted at `dir/objects` (created).
    pub fn open(dir: &Path) -> io::Result<Self> {
        let root = dir.join("objects");
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    fn paths(&self, uuid: &str) -> io::Result<(PathBuf, PathBuf)> {
        if !is_valid_uuid(uuid) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad object name {uuid:?}"),
            ));
        }
        let dir = self.root.join(&uuid[..2]);
        Ok((dir.join(uuid), dir.join(format!("{uuid}.meta"))))
    }
}

fn not_found_is_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Storage for LocalDisk {
    fn put(&self, uuid: &str, source: &Path, meta: &ObjectMeta) -> io::Result<()> {
        let (data, meta_path) = self.paths(uuid)?;
        if let Some(dir) = data.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // The metadata first: an object without it is unreadable, one with it but without data
        // reads as missing; the rename makes the object appear at once.
        let tmp = meta_path.with_extension("meta.tmp");
        std::fs::write(&tmp, serde_json::to_vec(meta)?)?;
        std::fs::rename(&tmp, &meta_path)?;
        File::open(source)?.sync_all()?;
        std::fs::rename(source, &data)?;
        if let Some(dir) = data.parent() {
            // Make the renames durable (directory entry); best effort where unsupported.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    fn read_from(&self, uuid: &str, offset: u64) -> io::Result<Option<ObjectReader>> {
        let Some(meta) = self.meta(uuid)? else {
            return Ok(None);
        };
        let (data, _) = self.paths(uuid)?;
        let Some(mut file) = not_found_is_none(File::open(data))? else {
            return Ok(None);
        };
        file.seek(SeekFrom::Start(offset))?;
        Ok(Some(ObjectReader {
            meta,
            reader: Box::new(file),
        }))
    }

    fn meta(&self, uuid: &str) -> io::Result<Option<ObjectMeta>> {
        let (data, meta_path) = self.paths(uuid)?;
        let Some(raw) = not_found_is_none(std::fs::read(meta_path))? else {
            return Ok(None);
        };
        if !data.is_file() {
            return Ok(None);
        }
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    fn delete(&self, uuid: &str) -> io::Result<()> {
        let (data, meta_path) = self.paths(uuid)?;
        not_found_is_none(std::fs::remove_file(data))?;
        not_found_is_none(std::fs::remove_file(meta_path))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_disk_put_read_range_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let disk = LocalDisk::open(dir.path()).unwrap();
        let uuid = "0123456789abcdef0123456789abcdef";
        let source = dir.path().join("upload.part");
        std::fs::write(&source, b"hello, world").unwrap();
        let meta = ObjectMeta {
            size: 12,
            content_type: "text/plain".into(),
            file_name: "h.txt".into(),
        };
        assert!(disk.meta(uuid).unwrap().is_none());
        disk.put(uuid, &source, &meta).unwrap();
        assert!(!source.exists(), "the upload's file is moved, not copied");
        assert_eq!(disk.meta(uuid).unwrap(), Some(meta.clone()));
        let mut object = disk.read_from(uuid, 7).unwrap().unwrap();
        let mut rest = String::new();
        object.reader.read_to_string(&mut rest).unwrap();
        assert_eq!((object.meta, rest.as_str()), (meta, "world"));
        disk.delete(uuid).unwrap();
        assert!(disk.read_from(uuid, 0).unwrap().is_none());
        disk.delete(uuid).unwrap();
        assert!(disk.meta("../etc/passwd").is_err());
        assert!(!is_valid_uuid("0123456789ABCDEF0123456789abcdef"));
    }
}
