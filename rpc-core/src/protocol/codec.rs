//! The frame codec for `tokio_util::codec::Framed`: length-prefixed frames with a size limit.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::frame::MIN_FRAME_LEN;
use super::Frame;

/// The default limit on a frame's length: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Why bytes could not be read or written as a frame. Any of these ends the connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// A metadata block (flags bit 0) whose lengths run past the end of the frame.
    #[error("metadata block runs past the end of the frame")]
    BadMetadata,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Codec, Kind};
    use bytes::{BufMut, Bytes};
    use proptest::prelude::*;

    const LIMIT: usize = 4096;

    /// Feeds `input` to a decoder in chunks, the way a socket would, until it errors or
    /// runs out of frames. Returns the decoded frames and whether it stopped on an error.
    fn drive(input: &[u8], chunk: usize) -> (Vec<Frame>, bool) {
        let mut codec = FrameCodec::new(LIMIT);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            buf.put_slice(piece);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(_) => return (frames, true),
                }
                // The buffer never grows past one frame at the limit plus what was pushed.
                assert!(buf.capacity() <= 4 + LIMIT + input.len() + 64);
            }
            assert!(buf.capacity() <= 4 + LIMIT + input.len() + 64);
        }
        (frames, false)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic_or_overallocate(
            input in proptest::collection::vec(any::<u8>(), 0..8192),
            chunk in 1usize..512,
        ) {
            let _ = drive(&input, chunk);
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_header_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..600),
            len_delta in -30i64..30,
        ) {
            let mut input = Vec::new();
            let len = (tail.len() as i64 + 4 + len_delta).clamp(0, u32::MAX as i64) as u32;
            input.extend_from_slice(&len.to_be_bytes());
            input.extend_from_slice(&[0x52, 0x50, 1]);
            input.extend_from_slice(&tail);
            let _ = drive(&input, 7);
        }

        #[test]
        fn valid_frames_round_trip_in_any_chunking(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
            chunk in 1usize..64,
        ) {
            let mut wire = BytesMut::new();
            let frames: Vec<Frame> = bodies
                .iter()
                .enumerate()
                .map(|(i, b)| Frame::request(i as u64, Codec::Json, 5, "s:1", "m", Bytes::from(b.clone())))
                .collect();
            for frame in &frames {
                frame.encode(&mut wire).unwrap();
            }
            let (decoded, failed) = drive(&wire, chunk);
            prop_assert!(!failed);
            prop_assert_eq!(decoded, frames);
        }
    }

    #[test]
    fn over_limit_length_is_refused_before_buffering() {
        let mut codec = FrameCodec::new(LIMIT);
        let mut buf = BytesMut::from(&((LIMIT as u32) + 1).to_be_bytes()[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(buf.capacity() < LIMIT);
    }

    #[test]
    fn eof_mid_frame_is_truncated() {
        let mut codec = FrameCodec::new(LIMIT);
        let mut buf = BytesMut::new();
        Frame::control(Kind::Ping, 1).encode(&mut buf).unwrap();
        buf.truncate(buf.len() - 2);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(FrameError::Truncated { .. })
        ));
    }
}
