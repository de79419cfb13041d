//! [`Codecs`]: the codecs one side reads and writes, keyed by their codec byte.

use std::fmt;

use super::{BodyCodec, Codec};

/// The codecs a server answers in and a client may call with: the built-ins (bincode 0,
/// JSON 1, postcard 2) and any [`BodyCodec`] registered, one per id.
///
/// A server answers a request whose codec byte names no codec here with status 4 (bad
/// request) for that call; the connection stays open.
///
/// ```
/// use rpc_core::protocol::Codecs;
/// use rpc_core::Codec;
///
/// let codecs = Codecs::new();
/// assert_eq!(codecs.get(2), Some(Codec::Postcard));
/// assert_eq!(codecs.get(9), None);
/// assert_eq!(codecs.to_string(), "bincode (0), json (1), postcard (2)");
/// ```
#[derive(Clone, Default)]
pub struct Codecs {
    custom: Vec<&'static dyn BodyCodec>,
}

/// A codec whose id another registered codec already has.
#[derive(Debug, Clone, thiserror::Error)]
#[error("codec {name:?} cannot be registered with id {id}: {existing:?} has that id")]
pub struct DuplicateCodec {
    /// The id asked for.
    pub id: u8,
    /// The codec that was refused.
    pub name: &'static str,
    /// The codec that has the id.
    pub existing: &'static str,
}

impl Codecs {
    /// The built-in codecs only.
    pub fn new() -> Codecs {
        Codecs::default()
    }

    /// Adds `codec`; refused when its id is taken (by a built-in or an earlier codec).
    pub fn register(&mut self, codec: &'static dyn BodyCodec) -> Result<(), DuplicateCodec> {
        if let Some(existing) = self.get(codec.id()) {
            return Err(DuplicateCodec {
                id: codec.id(),
                name: codec.name(),
                existing: existing.name(),
            });
        }
        self.custom.push(codec);
        Ok(())
    }

    /// The codec with this codec byte, if this side has one.
    #[inline]
    pub fn get(&self, id: u8) -> Option<Codec> {
        match Codec::from_u8(id) {
            Some(codec) => Some(codec),
            None => self
                .custom
                .iter()
                .find(|codec| codec.id() == id)
                .map(|codec| Codec::Custom(*codec)),
        }
    }

    /// The codec with this name (`bincode`, `json`, `postcard` or a registered one's).
    pub fn by_name(&self, name: &str) -> Option<Codec> {
        self.iter().find(|codec| codec.name() == name)
    }

    /// Whether `codec` is one of these: a built-in, or the very codec registered with its id.
    #[inline]
    pub fn contains(&self, codec: Codec) -> bool {
        match (codec, self.get(codec.id())) {
            (Codec::Custom(asked), Some(Codec::Custom(known))) => std::ptr::addr_eq(asked, known),
            (Codec::Custom(_), _) => false,
            (_, known) => known.is_some(),
        }
    }

    /// Every codec, built-ins first.
    pub fn iter(&self) -> impl Iterator<Item = Codec> + '_ {
        Codec::BUILT_IN
            .into_iter()
            .chain(self.custom.iter().map(|codec| Codec::Custom(*codec)))
    }
}

impl fmt::Display for Codecs {
    /// `name (id)` of each codec, comma separated: what a server tells a caller it can read.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, codec) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} ({})", codec.name(), codec.id())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Codecs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Codecs({self})")
    }
}
