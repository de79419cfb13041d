//! Codecs end to end over real TCP on 127.0.0.1: a user's codec registered on both sides
//! carries every example call; a codec the server does not know gets status 4 for that call
//! and the connection goes on; a client refuses a codec it has not registered.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use example_provider::{CalculatorClient, GreeterClient};
use rpc_core::protocol::{BodyCodec, BoxError, Codecs, DecodeTarget, Frame};
use rpc_core::{erased_serde, Client, Codec, RpcError, Server, Status};
use tests::raw::{encode, read_frame, request, CALC};
use tests::servers::example_server;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

/// A user codec: JSON behind a "J1" version prefix, so a body it did not write cannot pass.
struct VersionedJson;

impl BodyCodec for VersionedJson {
    fn id(&self) -> u8 {
        9
    }
    fn name(&self) -> &'static str {
        "versioned-json"
    }
    fn encode(
        &self,
        value: &dyn erased_serde::Serialize,
        dst: &mut BytesMut,
    ) -> Result<(), BoxError> {
        dst.put_slice(b"J1");
        serde_json::to_writer(dst.writer(), value)?;
        Ok(())
    }
    fn decode(&self, body: &[u8], target: DecodeTarget<'_>) -> Result<(), BoxError> {
        let json = body.strip_prefix(b"J1").ok_or("no J1 prefix")?;
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        target.deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(())
    }
}

static VERSIONED_JSON: VersionedJson = VersionedJson;

fn with_versioned_json() -> Codecs {
    let mut codecs = Codecs::new();
    codecs
        .register(&VERSIONED_JSON)
        .unwrap_or_else(|e| panic!("{e}"));
    codecs
}

#[tokio::test]
async fn a_user_codec_registered_on_both_sides_carries_every_example_call() {
    let server = example_server(Server::builder().codecs(with_versioned_json())).await;
    let addr = server.local_addr().to_string();
    let client = Client::builder()
        .codecs(with_versioned_json())
        .codec(Codec::Custom(&VERSIONED_JSON))
        .connect(&addr)
        .await
        .unwrap();
    let greeter = GreeterClient::new(client.clone());
    let calc = CalculatorClient::new(client);
    assert_eq!(greeter.hello("bob".into()).await.unwrap(), "Hello, bob!");
    assert_eq!(greeter.whoami().await.unwrap(), addr);
    assert_eq!(calc.add(-7, 3).await.unwrap(), -4);
    assert_eq!(
        calc.divide(1, 0).await.unwrap(),
        Err("division by zero".into())
    );
    let data: Vec<u8> = (0..=255).collect();
    assert_eq!(calc.echo(data.clone()).await.unwrap(), data);
    calc.sleep(1).await.unwrap();

    // The frames really are in the user codec: id 9 on the wire, the prefix in the body.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let body = Codec::Custom(&VERSIONED_JSON)
        .encode(&(2i64, 3i64))
        .unwrap();
    assert_eq!(&body[..], b"J1[2,3]");
    let add = Frame::request(1, Codec::Custom(&VERSIONED_JSON), 0, CALC, "add", body);
    stream.write_all(&encode(&add)).await.unwrap();
    let reply = read_frame(&mut stream, WAIT).await.expect("no reply");
    assert_eq!((reply.status, reply.codec), (Status::Ok, 9));
    assert_eq!(&reply.body[..], b"J15");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_codec_the_server_does_not_know_gets_status_4_and_the_connection_goes_on() {
    let server = example_server(Server::builder()).await;
    let addr = server.local_addr().to_string();

    // Through a client that knows the codec: the call fails with status 4, naming it.
    let client = Client::builder()
        .codecs(with_versioned_json())
        .connect(&addr)
        .await
        .unwrap();
    let calc = CalculatorClient::new(client.clone());
    let custom =
        calc.with_options(rpc_core::CallOptions::new().with_codec(Codec::Custom(&VERSIONED_JSON)));
    let err = custom.add(2, 3).await.unwrap_err();
    assert_eq!(err.status(), Some(Status::BadRequest), "{err}");
    assert!(err.to_string().contains("unknown codec 9"), "{err}");
    assert!(err.to_string().contains("postcard (2)"), "{err}");
    // The same connection still carries calls in a codec the server reads.
    assert_eq!(calc.add(2, 3).await.unwrap(), 5);

    // Over a raw socket: an unassigned codec byte, then a good call on the same stream.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let odd = Frame::request(41, 200u8, 0, CALC, "add", Bytes::from_static(b"??"));
    stream.write_all(&encode(&odd)).await.unwrap();
    let reply = read_frame(&mut stream, WAIT).await.expect("no reply");
    assert_eq!(
        (reply.id, reply.status, reply.codec),
        (41, Status::BadRequest, 200)
    );
    assert!(String::from_utf8_lossy(&reply.body).contains("unknown codec 200"));
    stream
        .write_all(&encode(&request(42, CALC, "add", 0, &(2i64, 3i64))))
        .await
        .unwrap();
    let reply = read_frame(&mut stream, WAIT).await.expect("no reply");
    assert_eq!((reply.id, reply.status), (42, Status::Ok));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_client_refuses_a_codec_it_has_not_registered() {
    let server = example_server(Server::builder().codecs(with_versioned_json())).await;
    let client = Client::builder()
        .codec(Codec::Custom(&VERSIONED_JSON))
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let err = CalculatorClient::new(client).add(2, 3).await.unwrap_err();
    assert!(matches!(err, RpcError::Codec(_)), "{err}");
    assert!(
        err.to_string().contains("not registered on this client"),
        "{err}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn postcard_calls_reach_a_provider_process() {
    let mut provider = tests::process::Provider::start("none", &[]);
    let client = Client::builder()
        .codec(Codec::Postcard)
        .connect(&provider.address())
        .await
        .unwrap();
    let calc = CalculatorClient::new(client);
    assert_eq!(calc.add(i64::MIN + 1, -1).await.unwrap(), i64::MIN);
    let data = vec![0xffu8; 70_000];
    assert_eq!(calc.echo(data.clone()).await.unwrap(), data);
    provider.kill();
}
