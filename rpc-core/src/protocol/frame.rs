//! One message on the wire, and its byte layout.

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;

use super::metadata::{block_len, FLAG_METADATA};
use super::{Codec, FrameError, Status};

/// The two magic bytes every frame starts with: "RP".
pub const MAGIC: [u8; 2] = [0x52, 0x50];
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Bytes of the fixed header after the length prefix, up to and including the deadline.
pub const HEADER_LEN: usize = 2 + 1 + 1 + 1 + 1 + 2 + 8 + 4;
/// The smallest valid frame: the fixed header plus two empty names.
pub(crate) const MIN_FRAME_LEN: usize = HEADER_LEN + 2 + 2;

/// What a frame is for (the `kind` byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A call: service key, method and argument tuple.
    Request = 0,
    /// The answer to the request with the same id.
    Response = 1,
    /// A liveness probe; the peer answers with [`Kind::Pong`] and the same id.
    Ping = 2,
    /// The answer to a ping.
    Pong = 3,
    /// The caller gave up on the request with this id; the server may stop working on it.
    Cancel = 4,
    /// No new requests will be accepted on this connection; in-flight ones still complete.
    GoAway = 5,
}

impl Kind {
    /// Parses a kind byte; `None` for a code the protocol does not define.
    pub fn from_u8(code: u8) -> Option<Kind> {
        Some(match code {
            0 => Kind::Request,
            1 => Kind::Response,
            2 => Kind::Ping,
            3 => Kind::Pong,
            4 => Kind::Cancel,
            5 => Kind::GoAway,
            _ => return None,
        })
    }
}

/// One decoded message. Names are UTF-8-checked when a frame is parsed.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use rpc_core::protocol::{Codec, Frame, Kind};
///
/// let request = Frame::request(1, Codec::Json, 5000, "example.Greeter:1.0.0", "hello",
///     Bytes::from_static(br#"["bob"]"#));
/// let mut wire = BytesMut::new();
/// request.encode(&mut wire).unwrap();
/// assert_eq!(&wire[4..6], b"RP");
///
/// // Parse what follows the 4-byte length prefix.
/// let parsed = Frame::parse(wire.freeze().slice(4..)).unwrap();
/// assert_eq!(parsed.kind, Kind::Request);
/// assert_eq!(&*parsed.method, "hello");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the frame is for.
    pub kind: Kind,
    /// The codec byte: how the body is serialized. Any byte parses; which codec it names is
    /// up to the receiver's [`Codecs`](super::Codecs) (a server answers an id it does not
    /// know with status 4 for that call).
    pub codec: u8,
    /// The outcome (responses); [`Status::Ok`] elsewhere.
    pub status: Status,
    /// Bit 0 ([`FLAG_METADATA`]) says a metadata block follows the names; [`Frame::encode`]
    /// sets or clears it from [`Frame::metadata`]. Other bits are reserved, 0.
    pub flags: u16,
    /// Matches a response to its request.
    pub id: u64,
    /// Milliseconds the caller still waits; 0 means no deadline (requests).
    pub deadline_ms: u32,
    /// `<service-name>:<version>` (requests; empty otherwise).
    pub service: ByteString,
    /// The method name (requests; empty otherwise).
    pub method: ByteString,
    /// The encoded metadata block ([`Metadata::encode`](super::Metadata::encode)), or empty
    /// for none. Its limits and keys are checked by
    /// [`Metadata::decode`](super::Metadata::decode), not by the parser.
    pub metadata: Bytes,
    /// Arguments, return value, or an error message.
    pub body: Bytes,
}

impl Frame {
    /// A request frame.
    pub fn request(
        id: u64,
        codec: impl Into<u8>,
        deadline_ms: u32,
        service: impl Into<ByteString>,
        method: impl Into<ByteString>,
        body: Bytes,
    ) -> Frame {
        Frame {
            kind: Kind::Request,
            codec: codec.into(),
            status: Status::Ok,
            flags: 0,
            id,
            deadline_ms,
            service: service.into(),
            method: method.into(),
            metadata: Bytes::new(),
            body,
        }
    }

    /// A response frame carrying `status` and `body`.
    pub fn response(id: u64, codec: impl Into<u8>, status: Status, body: Bytes) -> Frame {
        Frame {
            status,
            body,
            codec: codec.into(),
            ..Frame::control(Kind::Response, id)
        }
    }

    /// A response whose body is a UTF-8 error message.
    pub fn error(id: u64, codec: impl Into<u8>, status: Status, message: &str) -> Frame {
        Frame::response(
            id,
            codec,
            status,
            Bytes::copy_from_slice(message.as_bytes()),
        )
    }

    /// A frame with no names and no body: ping, pong, cancel or goaway.
    pub fn control(kind: Kind, id: u64) -> Frame {
        Frame {
            kind,
            codec: Codec::Bincode.id(),
            status: Status::Ok,
            flags: 0,
            id,
            deadline_ms: 0,
            service: ByteString::new(),
            method: ByteString::new(),
            metadata: Bytes::new(),
            body: Bytes::new(),
        }
    }

    /// The number of bytes this frame takes after the 4-byte length prefix.
    pub fn encoded_len(&self) -> usize {
        MIN_FRAME_LEN
            + self.service.len()
            + self.method.len()
            + self.metadata.len()
            + self.body.len()
    }

    /// Appends the frame, length prefix included, to `dst`.
    ///
    /// Fails only when a name is longer than 65,535 bytes or the frame longer than 4 GiB.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode_head(dst, self.body.len())?;
        dst.extend_from_slice(&self.body);
        Ok(())
    }

    /// Appends everything but the body (the length prefix counts it) to `dst`, with room
    /// reserved for `then_reserve` more bytes: a writer that sends a large body from its own
    /// buffer passes 0 and does not copy it.
    pub(crate) fn encode_head(
        &self,
        dst: &mut BytesMut,
        then_reserve: usize,
    ) -> Result<(), FrameError> {
        let len = self.encoded_len();
        let len32 = u32::try_from(len).map_err(|_| FrameError::TooLarge {
            len,
            max: u32::MAX as usize,
        })?;
        let service_len = name_len("service", &self.service)?;
        let method_len = name_len("method", &self.method)?;
        let flags = if self.metadata.is_empty() {
            self.flags & !FLAG_METADATA
        } else {
            self.flags | FLAG_METADATA
        };
        // The fixed part is assembled on the stack and appended at once: one capacity check
        // and copy instead of one per field.
        let mut head = [0u8; 4 + HEADER_LEN + 2];
        head[0..4].copy_from_slice(&len32.to_be_bytes());
        head[4..6].copy_from_slice(&MAGIC);
        head[6] = VERSION;
        head[7] = self.kind as u8;
        head[8] = self.codec;
        head[9] = self.status.as_u8();
        head[10..12].copy_from_slice(&flags.to_be_bytes());
        head[12..20].copy_from_slice(&self.id.to_be_bytes());
        head[20..24].copy_from_slice(&self.deadline_ms.to_be_bytes());
        head[24..26].copy_from_slice(&service_len.to_be_bytes());
        dst.reserve(4 + len - self.body.len() + then_reserve);
        dst.extend_from_slice(&head);
        dst.extend_from_slice(self.service.as_bytes());
        dst.extend_from_slice(&method_len.to_be_bytes());
        dst.extend_from_slice(self.method.as_bytes());
        dst.extend_from_slice(&self.metadata);
        Ok(())
    }

    /// Parses one frame from its bytes after the length prefix.
    pub fn parse(mut buf: Bytes) -> Result<Frame, FrameError> {
        if buf.len() < MIN_FRAME_LEN {
            return Err(FrameError::TooShort { len: buf.len() });
        }
        let magic = [buf.get_u8(), buf.get_u8()];
        if magic != MAGIC {
            return Err(FrameError::BadMagic(magic));
        }
        let version = buf.get_u8();
        if version != VERSION {
            return Err(FrameError::BadVersion(version));
        }
        let kind_byte = buf.get_u8();
        let kind = Kind::from_u8(kind_byte).ok_or(FrameError::UnknownKind(kind_byte))?;
        let codec = buf.get_u8();
        let status_byte = buf.get_u8();
        let status = Status::from_u8(status_byte).ok_or(FrameError::UnknownStatus(status_byte))?;
        let flags = buf.get_u16();
        let id = buf.get_u64();
        let deadline_ms = buf.get_u32();
        let service = take_name("service", &mut buf)?;
        let method = take_name("method", &mut buf)?;
        let metadata = if flags & FLAG_METADATA != 0 {
            let len = block_len(&buf).ok_or(FrameError::BadMetadata)?;
            buf.split_to(len)
        } else {
            Bytes::new()
        };
        Ok(Frame {
            kind,
            codec,
            status,
            flags,
            id,
            deadline_ms,
            service,
            method,
            metadata,
            body: buf,
        })
    }
}

fn name_len(field: &'static str, name: &str) -> Result<u16, FrameError> {
    u16::try_from(name.len()).map_err(|_| FrameError::NameTooLong {
        field,
        len: name.len(),
    })
}

fn take_name(field: &'static str, buf: &mut Bytes) -> Result<ByteString, FrameError> {
    if buf.len() < 2 {
        return Err(FrameError::BadName {
            field,
            reason: "its length prefix is cut off",
        });
    }
    let len = usize::from(buf.get_u16());
    if buf.len() < len {
        return Err(FrameError::BadName {
            field,
            reason: "it runs past the end of the frame",
        });
    }
    ByteString::try_from(buf.split_to(len)).map_err(|_| FrameError::BadName {
        field,
        reason: "it is not UTF-8",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips() {
        let frame = Frame::request(
            7,
            Codec::Json,
            250,
            "example.Greeter:1.0.0",
            "hello",
            Bytes::from_static(b"[\"bob\"]"),
        );
        let mut buf = BytesMut::new();
        frame.encode(&mut buf).unwrap();
        assert_eq!(buf.len(), 4 + frame.encoded_len());
        let parsed = Frame::parse(buf.freeze().slice(4..)).unwrap();
        assert_eq!(parsed, frame);
    }

    #[test]
    fn control_frame_is_the_minimum_size() {
        let mut buf = BytesMut::new();
        Frame::control(Kind::Ping, 1).encode(&mut buf).unwrap();
        assert_eq!(buf.len(), 4 + MIN_FRAME_LEN);
        assert_eq!(&buf[..4], &(MIN_FRAME_LEN as u32).to_be_bytes());
    }
}

#[cfg(test)]
mod worked_example {
    use super::*;
    use crate::protocol::Metadata;

    fn hex(dump: &str) -> Vec<u8> {
        dump.lines()
            .flat_map(|line| line.split_whitespace().skip(1))
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn encoded(frame: &Frame) -> Vec<u8> {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf).unwrap();
        buf.to_vec()
    }

    /// The metadata examples of docs/protocol.md, byte for byte, and back.
    #[test]
    fn metadata_matches_docs_protocol_md() {
        let mut request = Frame::request(
            1,
            Codec::Json,
            5000,
            "example.Greeter:1.0.0",
            "hello",
            Bytes::from_static(b"[\"bob\"]"),
        );
        let mut metadata = Metadata::new();
        metadata.insert("rpc-tag", "gray").unwrap();
        request.metadata = metadata.encode();
        let expected = hex("0000  00 00 00 49 52 50 01 00 01 00 00 01 00 00 00 00
0010  00 00 00 01 00 00 13 88 00 15 65 78 61 6d 70 6c
0020  65 2e 47 72 65 65 74 65 72 3a 31 2e 30 2e 30 00
0030  05 68 65 6c 6c 6f 00 01 07 72 70 63 2d 74 61 67
0040  00 04 67 72 61 79 5b 22 62 6f 62 22 5d");
        assert_eq!(encoded(&request), expected);
        let parsed = Frame::parse(Bytes::from(expected).slice(4..)).unwrap();
        assert_eq!(parsed.flags, FLAG_METADATA);
        assert_eq!(&parsed.body[..], b"[\"bob\"]");
        let back = Metadata::decode(&parsed.metadata, &Default::default()).unwrap();
        assert_eq!(back, metadata);

        let mut reply = Frame::response(
            1,
            Codec::Json,
            Status::Ok,
            Bytes::from_static(b"\"Hello, bob!\""),
        );
        let mut metadata = Metadata::new();
        metadata.insert("rpc-cache", "hit").unwrap();
        reply.metadata = metadata.encode();
        assert_eq!(
            encoded(&reply),
            hex("0000  00 00 00 36 52 50 01 01 01 00 00 01 00 00 00 00
0010  00 00 00 01 00 00 00 00 00 00 00 00 00 01 09 72
0020  70 63 2d 63 61 63 68 65 00 03 68 69 74 22 48 65
0030  6c 6c 6f 2c 20 62 6f 62 21 22")
        );
    }

    /// A frame without metadata parses to the same call as before metadata existed, and a
    /// truncated block is a bad frame.
    #[test]
    fn old_frames_are_unchanged_and_truncated_blocks_are_refused() {
        let plain = Frame::request(
            1,
            Codec::Json,
            5000,
            "example.Greeter:1.0.0",
            "hello",
            Bytes::from_static(b"[\"bob\"]"),
        );
        let wire = encoded(&plain);
        let parsed = Frame::parse(Bytes::from(wire).slice(4..)).unwrap();
        assert_eq!(parsed, plain);
        assert!(parsed.metadata.is_empty());

        // Flag set, but the block claims a 4-byte value where 2 bytes remain.
        let mut cut = plain.clone();
        cut.body = Bytes::new();
        let mut bytes = encoded(&cut);
        bytes[10..12].copy_from_slice(&FLAG_METADATA.to_be_bytes());
        bytes.extend_from_slice(&[0, 1, 1, b'k', 0, 4, b'x', b'y']);
        let len = (bytes.len() - 4) as u32;
        bytes[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            Frame::parse(Bytes::from(bytes).slice(4..)),
            Err(FrameError::BadMetadata)
        ));
    }

    /// The request of docs/protocol.md, byte for byte.
    #[test]
    fn matches_docs_protocol_md() {
        let frame = Frame::request(
            1,
            Codec::Json,
            5000,
            "example.Greeter:1.0.0",
            "hello",
            Bytes::from_static(b"[\"bob\"]"),
        );
        let mut buf = BytesMut::new();
        frame.encode(&mut buf).unwrap();
        let expected: Vec<u8> = "00 00 00 39 52 50 01 00 01 00 00 00 00 00 00 00 \
             00 00 00 01 00 00 13 88 00 15 65 78 61 6d 70 6c \
             65 2e 47 72 65 65 74 65 72 3a 31 2e 30 2e 30 00 \
             05 68 65 6c 6c 6f 5b 22 62 6f 62 22 5d"
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        assert_eq!(&buf[..], &expected[..]);
        let reply = Frame::response(
            1,
            Codec::Json,
            Status::Ok,
            Bytes::from_static(b"\"Hello, bob!\""),
        );
        let mut buf = BytesMut::new();
        reply.encode(&mut buf).unwrap();
        assert_eq!(&buf[..8], &[0x00, 0x00, 0x00, 0x25, 0x52, 0x50, 0x01, 0x01]);
        assert_eq!(buf.len(), 41);
        assert_eq!(
            Codec::Bincode.encode(&("bob",)).unwrap().as_ref(),
            &[3, b'b', b'o', b'b']
        );
    }
}
