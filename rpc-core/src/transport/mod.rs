//! Pieces shared by both ends of a connection.

mod writer;

pub(crate) use writer::FrameWriter;
