//! Decoding arbitrary bytes as every argument tuple and every return value the example
//! services use, in every built-in codec: never a panic, and never more memory than a small multiple
//! of the input, measured by a counting allocator.

mod alloc_support;

use alloc_support::peak_decoding;
use proptest::prelude::*;
use rpc_core::__private::serde_bytes::ByteBuf;
use rpc_core::Codec;

/// Memory a decode may use: 16 bytes per input byte (bincode's claim allowance), plus a
/// little for error messages.
fn allowed(input: &[u8]) -> usize {
    16 * input.len() + 4096
}

/// Decodes `input` as every shape, in both codecs, checking the memory each took.
fn every_shape(input: &[u8]) -> Result<(), TestCaseError> {
    for codec in Codec::BUILT_IN {
        let peaks = [
            ("(String,)", peak_decoding::<(String,)>(codec, input)),
            ("()", peak_decoding::<()>(codec, input)),
            ("(i64, i64)", peak_decoding::<(i64, i64)>(codec, input)),
            ("(Vec<u8>,)", peak_decoding::<(ByteBuf,)>(codec, input)),
            ("(u64,)", peak_decoding::<(u64,)>(codec, input)),
            ("String", peak_decoding::<String>(codec, input)),
            ("i64", peak_decoding::<i64>(codec, input)),
            (
                "Result<i64, String>",
                peak_decoding::<Result<i64, String>>(codec, input),
            ),
            ("Vec<u8>", peak_decoding::<ByteBuf>(codec, input)),
        ];
        for (shape, peak) in peaks {
            prop_assert!(
                peak <= allowed(input),
                "{} as {shape}: {peak} bytes for {} bytes of input",
                codec.name(),
                input.len()
            );
        }
    }
    Ok(())
}

/// `n` as postcard writes a length: LEB128, seven bits a byte, low bits first.
fn leb128(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A bincode or postcard varint of any size: a byte, or a marker and 2, 4 or 8 little-endian bytes.
fn varint() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0u8..251).prop_map(|b| vec![b]),
        any::<u16>().prop_map(|n| [&[251u8][..], &n.to_le_bytes()].concat()),
        any::<u32>().prop_map(|n| [&[252u8][..], &n.to_le_bytes()].concat()),
        any::<u64>().prop_map(|n| [&[253u8][..], &n.to_le_bytes()].concat()),
        Just(vec![253, 0, 0, 0, 0, 0, 0, 0, 0x10]), // 2^60
        any::<u64>().prop_map(leb128),              // postcard's varint
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_decode_within_a_small_multiple_of_their_length(
        input in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        every_shape(&input)?;
    }

    #[test]
    fn claimed_lengths_decode_within_a_small_multiple_of_the_input(
        tag in proptest::option::of(0u8..2), // a Result's variant before the length, or none
        length in varint(),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let input = [tag.map(|t| vec![t]).unwrap_or_default(), length, tail].concat();
        every_shape(&input)?;
    }
}

#[test]
fn the_issues_length_bombs_are_refused_cheaply() {
    for len in [1u64 << 34, 1 << 50, 1 << 60, u64::MAX] {
        let input = [&[253u8][..], &len.to_le_bytes()].concat();
        every_shape(&input).unwrap_or_else(|e| panic!("{e}"));
        assert!(Codec::Bincode.decode::<(String,)>(&input).is_err());
        assert!(Codec::Bincode.decode::<(ByteBuf,)>(&input).is_err());
    }
}
