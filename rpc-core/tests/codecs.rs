//! Every codec (bincode, JSON, postcard, and a user's [`BodyCodec`]) round-trips the argument
//! tuples and return values of the example services as the generated stubs send them, and
//! refuses the issue's length bombs without a large allocation.

mod alloc_support;

use alloc_support::peak_decoding;
use bytes::BytesMut;
use rpc_core::__private::serde_bytes::{ByteBuf, Bytes as BytesRef};
use rpc_core::protocol::{BodyCodec, BoxError, Codecs, DecodeTarget};
use rpc_core::{erased_serde, Codec};
use serde::{de::DeserializeOwned, Serialize};

/// A user codec: postcard behind a one-byte format marker, decoded through the type-erased
/// path.
struct MarkedPostcard;

const MARK: u8 = 0xA7;

impl BodyCodec for MarkedPostcard {
    fn id(&self) -> u8 {
        7
    }
    fn name(&self) -> &'static str {
        "marked-postcard"
    }
    fn encode(
        &self,
        value: &dyn erased_serde::Serialize,
        dst: &mut BytesMut,
    ) -> Result<(), BoxError> {
        dst.extend_from_slice(&[MARK]);
        dst.extend_from_slice(&postcard::to_stdvec(value)?);
        Ok(())
    }
    fn decode(&self, body: &[u8], target: DecodeTarget<'_>) -> Result<(), BoxError> {
        let rest = match body.split_first() {
            Some((&MARK, rest)) => rest,
            _ => return Err("no format marker".into()),
        };
        let mut deserializer = postcard::Deserializer::from_bytes(rest);
        target.deserialize(&mut deserializer)?;
        if !deserializer.finalize()?.is_empty() {
            return Err("trailing bytes after the value".into());
        }
        Ok(())
    }
}

static MARKED: MarkedPostcard = MarkedPostcard;

fn every_codec() -> Vec<Codec> {
    let mut codecs = Codecs::new();
    codecs.register(&MARKED).unwrap();
    codecs.iter().collect()
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    codec: Codec,
    value: T,
) {
    let body = codec
        .encode(&value)
        .unwrap_or_else(|e| panic!("{} encode {value:?}: {e}", codec.name()));
    let back: T = codec
        .decode(&body)
        .unwrap_or_else(|e| panic!("{} decode {value:?}: {e}", codec.name()));
    assert_eq!(back, value, "{}", codec.name());
}

#[test]
fn every_codec_round_trips_every_example_service_type() {
    let bytes: Vec<u8> = (0..=255).chain(0..=255).collect();
    for codec in every_codec() {
        // Greeter: hello(String) -> String, whoami() -> String.
        for name in ["", "bob", "zoë ✓ \u{1F600}", &"x".repeat(70_000)] {
            round_trip(codec, (name.to_string(),));
            round_trip(codec, name.to_string());
        }
        round_trip(codec, ());
        // Calculator: add(i64, i64) -> i64, divide(i64, i64) -> Result<i64, String>.
        for (a, b) in [(0, 0), (2, 3), (-7, 3), (i64::MIN, i64::MAX), (-1, 1 << 40)] {
            round_trip(codec, (a, b));
            round_trip(codec, a);
        }
        round_trip(codec, Ok::<i64, String>(5));
        round_trip(codec, Err::<i64, String>("division by zero".into()));
        // echo(Vec<u8>) -> Vec<u8>: byte vectors travel as serde_bytes.
        for data in [&[][..], &[0u8, 255][..], &bytes[..]] {
            round_trip(codec, (ByteBuf::from(data.to_vec()),));
            let body = codec.encode(&BytesRef::new(data)).unwrap();
            let back: ByteBuf = codec.decode(&body).unwrap();
            assert_eq!(back.into_vec(), data, "{}", codec.name());
        }
        // sleep(u64) -> ().
        for ms in [0u64, 5, u64::MAX] {
            round_trip(codec, (ms,));
        }
    }
}

#[test]
fn the_built_in_wire_bytes_are_unchanged() {
    assert_eq!(&Codec::Bincode.encode(&("bob",)).unwrap()[..], b"\x03bob");
    assert_eq!(&Codec::Json.encode(&("bob",)).unwrap()[..], br#"["bob"]"#);
    assert_eq!(&Codec::Postcard.encode(&("bob",)).unwrap()[..], b"\x03bob");
    // Where they differ: bincode marks a wide varint (251 + u16), postcard uses LEB128.
    assert_eq!(
        &Codec::Bincode.encode(&(300u64,)).unwrap()[..],
        &[251, 0x2c, 0x01]
    );
    assert_eq!(
        &Codec::Postcard.encode(&(300u64,)).unwrap()[..],
        &[0xac, 0x02]
    );
    let ids: Vec<u8> = every_codec().into_iter().map(Codec::id).collect();
    assert_eq!(ids, [0, 1, 2, 7]);
}

/// A claimed length as each binary codec writes it (JSON has no length prefixes: the
/// postcard form stands in, a body it cannot read).
fn claimed(codec: Codec, len: u64) -> Vec<u8> {
    match codec {
        Codec::Bincode => [&[253u8][..], &len.to_le_bytes()].concat(),
        Codec::Custom(_) => [&[MARK][..], &leb128(len)].concat(),
        _ => leb128(len),
    }
}

fn leb128(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}

/// The most a refused bomb may hold at once: a few KiB for the error message and the like.
const SMALL: usize = 16 * 1024;

#[test]
fn every_codec_refuses_the_issues_length_bombs_without_a_large_allocation() {
    for codec in every_codec() {
        for len in [1u64 << 34, 1 << 50, 1 << 60, u64::MAX] {
            let body = claimed(codec, len);
            for (shape, result, peak) in [
                (
                    "(String,)",
                    codec.decode::<(String,)>(&body).err(),
                    peak_decoding::<(String,)>(codec, &body),
                ),
                (
                    "(Vec<u8>,)",
                    codec.decode::<(ByteBuf,)>(&body).err(),
                    peak_decoding::<(ByteBuf,)>(codec, &body),
                ),
                (
                    "Vec<u8>",
                    codec.decode::<ByteBuf>(&body).err(),
                    peak_decoding::<ByteBuf>(codec, &body),
                ),
            ] {
                let name = codec.name();
                let err =
                    result.unwrap_or_else(|| panic!("{name} decoded a {len} bomb as {shape}"));
                assert!(
                    peak <= SMALL,
                    "{name} held {peak} bytes for a {len} bomb as {shape}"
                );
                if matches!(codec, Codec::Bincode | Codec::Postcard) {
                    // The bounded-decode error, naming the body's real size.
                    let expected = format!("claims more than its {} bytes", body.len());
                    assert!(err.message.contains(&expected), "{name} {shape}: {err}");
                }
            }
        }
    }
}

#[test]
fn a_codec_id_can_be_registered_once() {
    let mut codecs = Codecs::new();
    codecs.register(&MARKED).unwrap();
    let err = codecs.register(&MARKED).unwrap_err();
    assert_eq!((err.id, err.existing), (7, "marked-postcard"));

    struct Squatter;
    impl BodyCodec for Squatter {
        fn id(&self) -> u8 {
            2
        }
        fn name(&self) -> &'static str {
            "squatter"
        }
        fn encode(
            &self,
            _: &dyn erased_serde::Serialize,
            _: &mut BytesMut,
        ) -> Result<(), BoxError> {
            Err("unused".into())
        }
        fn decode(&self, _: &[u8], _: DecodeTarget<'_>) -> Result<(), BoxError> {
            Err("unused".into())
        }
    }
    static SQUATTER: Squatter = Squatter;
    let err = codecs.register(&SQUATTER).unwrap_err();
    assert_eq!(err.existing, "postcard", "{err}");
    assert_eq!(codecs.get(7), Some(Codec::Custom(&MARKED)));
    assert!(codecs.contains(Codec::Custom(&MARKED)));
    assert!(!codecs.contains(Codec::Custom(&SQUATTER)));
    assert!(!Codecs::new().contains(Codec::Custom(&MARKED)));
    assert_eq!(
        codecs.by_name("marked-postcard"),
        Some(Codec::Custom(&MARKED))
    );
}
