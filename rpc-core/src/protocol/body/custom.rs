//! [`BodyCodec`]: the trait a user implements to add a codec of their own, and the glue that
//! lets the generic [`Codec::encode`](super::Codec::encode) and
//! [`Codec::decode`](super::Codec::decode) reach it through `erased-serde`.
//!
//! Why a type-erased trait: generated stubs encode and decode many concrete types, and a
//! codec chosen at run time (from a frame's codec byte) must handle all of them, so its
//! methods cannot be generic. The built-in codecs do not go through this: they are variants of
//! [`Codec`](super::Codec), matched and monomorphized, with no boxing or dynamic dispatch.

use bytes::BytesMut;
use serde::de::DeserializeOwned;

/// What a codec's methods may fail with; its message reaches the caller (and, for a request
/// that does not decode, the status 4 reply).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body codec of your own: register it in a [`Codecs`](super::Codecs) on the server and the
/// client, and choose it with [`Codec::Custom`](super::Codec::Custom).
///
/// Ids 0–2 are the built-ins' (bincode, JSON, postcard); pick another byte, the same on every
/// peer. A codec lives as long as the process (`&'static`): a `static`, or
/// `Box::leak(Box::new(codec))` for one built at run time.
///
/// Decoding must be bounded by the body's length: a length or count inside the body that
/// claims more than the body holds must fail before anything is allocated for it (as the
/// built-ins do), and bytes left after the value must be an error.
///
/// ```
/// use bytes::{BufMut, BytesMut};
/// use rpc_core::protocol::{BodyCodec, BoxError, Codecs, DecodeTarget};
/// use rpc_core::{erased_serde, Codec};
///
/// /// JSON behind a "J1" version prefix.
/// struct VersionedJson;
///
/// impl BodyCodec for VersionedJson {
///     fn id(&self) -> u8 { 42 }
///     fn name(&self) -> &'static str { "versioned-json" }
///     fn encode(&self, value: &dyn erased_serde::Serialize, dst: &mut BytesMut)
///         -> Result<(), BoxError> {
///         dst.put_slice(b"J1");
///         serde_json::to_writer(dst.writer(), value)?;
///         Ok(())
///     }
///     fn decode(&self, body: &[u8], target: DecodeTarget<'_>) -> Result<(), BoxError> {
///         let json = body.strip_prefix(b"J1").ok_or("no J1 prefix")?;
///         let mut deserializer = serde_json::Deserializer::from_slice(json);
///         target.deserialize(&mut deserializer)?;
///         deserializer.end()?;
///         Ok(())
///     }
/// }
///
/// static VERSIONED_JSON: VersionedJson = VersionedJson;
///
/// let mut codecs = Codecs::new();
/// codecs.register(&VERSIONED_JSON).unwrap();
/// let codec = Codec::Custom(&VERSIONED_JSON);
/// let body = codec.encode(&("bob", 42u32)).unwrap();
/// assert_eq!(&body[..], br#"J1["bob",42]"#);
/// let back: (String, u32) = codec.decode(&body).unwrap();
/// assert_eq!(back, ("bob".to_string(), 42));
/// // A second codec with the same id is refused.
/// assert!(codecs.register(&VERSIONED_JSON).is_err());
/// ```
pub trait BodyCodec: Send + Sync + 'static {
    /// The codec byte of frames in this codec.
    fn id(&self) -> u8;

    /// A short name, for messages and configuration.
    fn name(&self) -> &'static str;

    /// Appends the encoding of `value` to `dst`.
    fn encode(
        &self,
        value: &dyn erased_serde::Serialize,
        dst: &mut BytesMut,
    ) -> Result<(), BoxError>;

    /// Decodes the whole of `body` into `target` by calling
    /// [`DecodeTarget::deserialize`] once with a deserializer over it.
    fn decode(&self, body: &[u8], target: DecodeTarget<'_>) -> Result<(), BoxError>;
}

/// Where a [`BodyCodec`] puts the value it decodes: the typed value the caller asked for,
/// behind a type-erased callback.
pub struct DecodeTarget<'a> {
    fill: &'a mut dyn for<'de> FnMut(
        &mut dyn erased_serde::Deserializer<'de>,
    ) -> Result<(), erased_serde::Error>,
}

impl DecodeTarget<'_> {
    /// Deserializes the value the caller expects from `deserializer`.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<(), D::Error> {
        let mut erased = <dyn erased_serde::Deserializer>::erase(deserializer);
        (self.fill)(&mut erased).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Debug for DecodeTarget<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecodeTarget")
    }
}

/// Encodes `value` with a user codec. Kept out of line, so the built-ins' match in
/// [`Codec::encode_into`](super::Codec::encode_into) stays small enough to inline.
#[cold]
#[inline(never)]
pub(super) fn encode<T: serde::Serialize + ?Sized>(
    codec: &dyn BodyCodec,
    value: &T,
    dst: &mut BytesMut,
) -> Result<(), BoxError> {
    codec.encode(&SizedRef(value), dst)
}

/// Decodes `body` as a `T` with a user codec (out of line, like [`encode`]).
#[cold]
#[inline(never)]
pub(super) fn decode<T: DeserializeOwned>(
    codec: &dyn BodyCodec,
    body: &[u8],
) -> Result<T, BoxError> {
    let mut slot = None;
    let mut fill = |deserializer: &mut dyn erased_serde::Deserializer<'_>| {
        slot = Some(erased_serde::deserialize::<T>(deserializer)?);
        Ok(())
    };
    codec.decode(body, DecodeTarget { fill: &mut fill })?;
    slot.ok_or_else(|| format!("codec {} decoded no value", codec.name()).into())
}

/// A sized stand-in for a possibly unsized value, so it coerces to `dyn erased_serde::Serialize`.
struct SizedRef<'a, T: ?Sized>(&'a T);

impl<T: serde::Serialize + ?Sized> serde::Serialize for SizedRef<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}
