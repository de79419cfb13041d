//! Decoding arbitrary bytes as every argument tuple and every return value the example
//! services use, in both codecs: never a panic, and never more memory than a small multiple
//! of the input, measured by a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use rpc_core::__private::serde_bytes::ByteBuf;
use rpc_core::Codec;

/// Counts, per thread, the bytes live now and the most live at once since the last reset.
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(bytes: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(bytes);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrank(bytes: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(bytes)));
}

// SAFETY: every call is passed straight to the system allocator; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size);
        shrank(layout.size());
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most memory decoding `input` as `T` held at once.
fn peak_decoding<T: serde::de::DeserializeOwned>(codec: Codec, input: &[u8]) -> usize {
    LIVE.with(|live| live.set(0));
    PEAK.with(|peak| peak.set(0));
    let decoded = codec.decode::<T>(input);
    let peak = PEAK.with(Cell::get);
    drop(decoded);
    peak
}

/// Memory a decode may use: 16 bytes per input byte (bincode's claim allowance), plus a
/// little for error messages.
fn allowed(input: &[u8]) -> usize {
    16 * input.len() + 4096
}

/// Decodes `input` as every shape, in both codecs, checking the memory each took.
fn every_shape(input: &[u8]) -> Result<(), TestCaseError> {
    for codec in [Codec::Bincode, Codec::Json] {
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

/// A bincode varint of any size: a byte, or a marker and 2, 4 or 8 little-endian bytes.
fn varint() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0u8..251).prop_map(|b| vec![b]),
        any::<u16>().prop_map(|n| [&[251u8][..], &n.to_le_bytes()].concat()),
        any::<u32>().prop_map(|n| [&[252u8][..], &n.to_le_bytes()].concat()),
        any::<u64>().prop_map(|n| [&[253u8][..], &n.to_le_bytes()].concat()),
        Just(vec![253, 0, 0, 0, 0, 0, 0, 0, 0x10]), // 2^60
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
