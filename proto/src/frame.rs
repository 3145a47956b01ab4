//! Frame encoding with the size limit enforced on both sides.
//!
//! Message-oriented transports (WebSocket) carry one encoded [`Frame`] per transport message:
//! use [`encode`] / [`decode`]. Stream transports (QUIC streams, TCP) prefix each frame with its
//! length as a big-endian `u32`: use [`encode_prefixed`] and [`LengthPrefixed`].

use bytes::{Buf, BytesMut};
use prost::Message as _;

use crate::pb::Frame;

/// Default maximum encoded size of one frame (4 MiB). A 12 KB message body fits many times over;
/// the limit bounds history pages and keeps a peer from exhausting memory.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The frame is larger than the limit.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the offending frame.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The bytes are not a valid protobuf `Frame`.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Encodes a frame, refusing one over `limit` bytes.
pub fn encode(frame: &Frame, limit: usize) -> Result<Vec<u8>, FrameError> {
    let size = frame.encoded_len();
    if size > limit {
        return Err(FrameError::TooLarge { size, limit });
    }
    Ok(frame.encode_to_vec())
}

/// Decodes a frame, refusing one over `limit` bytes before parsing it.
pub fn decode(bytes: &[u8], limit: usize) -> Result<Frame, FrameError> {
    if bytes.len() > limit {
        return Err(FrameError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    Frame::decode(bytes).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Encodes a frame with a big-endian `u32` length prefix, for stream transports.
pub fn encode_prefixed(frame: &Frame, limit: usize) -> Result<Vec<u8>, FrameError> {
    let size = frame.encoded_len();
    if size > limit {
        return Err(FrameError::TooLarge { size, limit });
    }
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&(size as u32).to_be_bytes());
    frame
        .encode(&mut out)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    Ok(out)
}

/// Incremental decoder of length-prefixed frames: feed bytes as they arrive, take whole frames.
#[derive(Debug)]
pub struct LengthPrefixed {
    buf: BytesMut,
    limit: usize,
}

impl LengthPrefixed {
    /// A decoder refusing frames over `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            limit,
        }
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed. After an error the stream is
    /// unusable (the framing is lost) and should be closed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let size =
            u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if size > self.limit {
            return Err(FrameError::TooLarge {
                size,
                limit: self.limit,
            });
        }
        if self.buf.len() < 4 + size {
            return Ok(None);
        }
        self.buf.advance(4);
        let body = self.buf.split_to(size);
        Frame::decode(&body[..])
            .map(Some)
            .map_err(|e| FrameError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{HeartbeatReq, Request, frame::Body, request::Kind};

    fn heartbeat(id: u64) -> Frame {
        Frame {
            id,
            body: Some(Body::Request(Request {
                kind: Some(Kind::Heartbeat(HeartbeatReq {})),
            })),
        }
    }

    #[test]
    fn round_trip_and_limits() {
        let f = heartbeat(7);
        let bytes = encode(&f, 1024).unwrap();
        assert_eq!(decode(&bytes, 1024).unwrap(), f);
        assert!(matches!(
            decode(&bytes, 1),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(encode(&f, 1), Err(FrameError::TooLarge { .. })));
        assert!(matches!(
            decode(&[0xff, 0xff, 0xff], 1024),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn length_prefixed_handles_split_and_joined_frames() {
        let mut wire = encode_prefixed(&heartbeat(1), 1024).unwrap();
        wire.extend(encode_prefixed(&heartbeat(2), 1024).unwrap());
        let mut d = LengthPrefixed::new(1024);
        d.extend(&wire[..3]);
        assert_eq!(d.next_frame().unwrap(), None);
        d.extend(&wire[3..]);
        assert_eq!(d.next_frame().unwrap().unwrap().id, 1);
        assert_eq!(d.next_frame().unwrap().unwrap().id, 2);
        assert_eq!(d.next_frame().unwrap(), None);
        let mut d = LengthPrefixed::new(4);
        d.extend(&[0, 0, 1, 0]);
        assert!(matches!(
            d.next_frame(),
            Err(FrameError::TooLarge {
                size: 256,
                limit: 4
            })
        ));
    }
}
