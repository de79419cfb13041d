//! The frame codec for `tokio_util::codec::Framed`: length-prefixed frames with a size limit.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::frame::MIN_FRAME_LEN;
use super::Frame;

/// The default limit on a frame's length: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Why bytes could not be read or written as a frame. Any of these ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is over the configured limit.
    #[error("frame of {len} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The length the peer announced.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The length prefix is smaller than the fixed header.
    #[error("frame of {len} bytes is shorter than the {MIN_FRAME_LEN}-byte header")]
    TooShort {
        /// The length the peer announced.
        len: usize,
    },
    /// The frame does not start with "RP".
    #[error("wrong magic bytes {0:02x?}, expected \"RP\" (52 50)")]
    BadMagic([u8; 2]),
    /// A protocol version this side does not speak.
    #[error("unsupported protocol version {0}, expected 1")]
    BadVersion(u8),
    /// An unknown `kind` byte.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// An unknown `codec` byte.
    #[error("unknown body codec {0}")]
    UnknownCodec(u8),
    /// An unknown `status` byte.
    #[error("unknown status {0}")]
    UnknownStatus(u8),
    /// A service or method name that cannot be read.
    #[error("bad {field} name: {reason}")]
    BadName {
        /// `"service"` or `"method"`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A name too long to encode.
    #[error("{field} name of {len} bytes is over 65535 bytes")]
    NameTooLong {
        /// `"service"` or `"method"`.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// The connection ended in the middle of a frame.
    #[error("connection closed in the middle of a frame ({buffered} bytes buffered)")]
    Truncated {
        /// Bytes of the unfinished frame that had arrived.
        buffered: usize,
    },
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes and decodes [`Frame`]s, refusing frames longer than `max_frame` bytes.
///
/// The decoder never reserves more than the limit: the length prefix is checked before any
/// buffer grows for the body.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame: usize,
}

impl FrameCodec {
    /// A codec with the given frame size limit (the length prefix's value).
    pub fn new(max_frame: usize) -> FrameCodec {
        FrameCodec { max_frame }
    }

    /// The frame size limit.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max_frame {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        if len < MIN_FRAME_LEN {
            return Err(FrameError::TooShort { len });
        }
        if src.len() < 4 + len {
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        let bytes = src.split_to(len).freeze();
        Frame::parse(bytes).map(Some)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.is_empty() => Ok(None),
            None => Err(FrameError::Truncated {
                buffered: buf.len(),
            }),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        frame.encode(dst)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        frame.encode(dst)
    }
}
