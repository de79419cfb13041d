//! The wire protocol: one frame per message, a 4-byte big-endian length, then a fixed header,
//! two length-prefixed names, an optional metadata block and a body. `docs/protocol.md` walks through it byte by byte.

mod body;
mod codec;
mod frame;
mod metadata;
mod status;

pub use body::{BodyCodec, BoxError, Codec, CodecError, Codecs, DecodeTarget, DuplicateCodec};
pub use codec::{FrameCodec, FrameError, DEFAULT_MAX_FRAME};
pub use frame::{Frame, Kind, HEADER_LEN, MAGIC, VERSION};
pub use metadata::{keys, Metadata, MetadataError, MetadataLimits, FLAG_METADATA};
pub use status::Status;
