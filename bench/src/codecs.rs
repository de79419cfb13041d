//! Per-codec figures printed before a `--codec` run: the encoded size of example requests
//! (body and whole frame) and the time to encode and decode them, in this process.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use rpc_core::protocol::Frame;
use rpc_core::Codec;
use serde::{de::DeserializeOwned, Serialize};
use serde_bytes::{ByteBuf, Bytes as BytesRef};

use crate::systems::BenchError;

/// Encode + decode rounds per measurement.
const ROUNDS: u32 = 200_000;

/// One example request: its service key, method and argument tuple.
struct Example<T> {
    label: &'static str,
    service: &'static str,
    method: &'static str,
    args: T,
}

/// The table: per codec and example, body bytes, frame bytes, and ns per encode + decode.
pub fn table(codecs: &[Codec]) -> Result<String, BenchError> {
    let payload = vec![0xa5u8; 128];
    let mut out = String::from(
        "codec     | request                      | body B | frame B | encode+decode ns\n\
         ----------|------------------------------|--------|---------|-----------------\n",
    );
    for &codec in codecs {
        let hello = Example {
            label: "Greeter.hello(\"bob\")",
            service: "example.Greeter:1.0.0",
            method: "hello",
            args: ("bob".to_string(),),
        };
        row::<_, (String,)>(&mut out, codec, &hello)?;
        let add = Example {
            label: "Calculator.add(1234567, -42)",
            service: "example.Calculator:1.0.0",
            method: "add",
            args: (1_234_567i64, -42i64),
        };
        row::<_, (i64, i64)>(&mut out, codec, &add)?;
        let echo = Example {
            label: "Echo.echo(128 B)",
            service: "bench.Echo:1.0.0",
            method: "echo",
            args: (BytesRef::new(&payload),),
        };
        row::<_, (ByteBuf,)>(&mut out, codec, &echo)?;
    }
    Ok(out)
}

/// Measures one example in one codec: `D` is the type the server decodes.
fn row<T: Serialize, D: DeserializeOwned>(
    out: &mut String,
    codec: Codec,
    example: &Example<T>,
) -> Result<(), BenchError> {
    let body = codec.encode(&example.args)?;
    let frame = Frame::request(
        1,
        codec,
        10_000,
        example.service,
        example.method,
        body.clone(),
    );
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let body: Bytes = codec.encode(black_box(&example.args))?;
        let back: D = codec.decode(black_box(&body))?;
        black_box(back);
    }
    let ns = started.elapsed().as_nanos() as f64 / f64::from(ROUNDS);
    writeln!(
        out,
        "{:<9} | {:<28} | {:>6} | {:>7} | {:>15.0}",
        codec.name(),
        example.label,
        body.len(),
        frame.encoded_len() + 4,
        ns
    )?;
    Ok(())
}
