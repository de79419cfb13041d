//! `Vec<u8>` arguments and return values travel through `serde_bytes` for speed; the bytes on
//! the wire must stay exactly those of a plain `Vec<u8>`, so other clients interoperate.

use rpc_core::{Codec, Service};

#[rpc_core::service(name = "test.Bytes")]
pub trait Blobs {
    async fn reverse(&self, data: Vec<u8>, tag: String) -> Vec<u8>;
    async fn wrap(&self, data: std::vec::Vec<u8>) -> (Vec<u8>, usize);
}

struct Impl;

impl Blobs for Impl {
    async fn reverse(&self, mut data: Vec<u8>, tag: String) -> Vec<u8> {
        data.reverse();
        data.extend_from_slice(tag.as_bytes());
        data
    }

    async fn wrap(&self, data: Vec<u8>) -> (Vec<u8>, usize) {
        let n = data.len();
        (data, n)
    }
}

#[tokio::test]
async fn plain_vec_u8_encodings_interoperate_in_both_codecs() {
    let server = BlobsServer::new(Impl);
    let data: Vec<u8> = (0..=255).collect();
    for codec in [Codec::Bincode, Codec::Json] {
        // A client that knows nothing of serde_bytes: a plain tuple with a plain Vec<u8>.
        let body = codec.encode(&(data.clone(), "!".to_string())).unwrap();
        let reply = server.call("reverse", codec, body).unwrap().await.unwrap();
        let mut expected: Vec<u8> = data.iter().rev().copied().collect();
        expected.push(b'!');
        assert_eq!(
            codec.decode::<Vec<u8>>(&reply).unwrap(),
            expected,
            "{codec:?}"
        );
        // And the reply's bytes are exactly a plain Vec<u8>'s.
        assert_eq!(reply, codec.encode(&expected).unwrap(), "{codec:?}");

        // Nested in a tuple the plain serde path is used, and still agrees.
        let body = codec.encode(&(data.clone(),)).unwrap();
        let reply = server.call("wrap", codec, body).unwrap().await.unwrap();
        assert_eq!(
            codec.decode::<(Vec<u8>, usize)>(&reply).unwrap(),
            (data.clone(), 256)
        );
    }
}

#[tokio::test]
async fn the_stub_round_trips_bytes_over_tcp() {
    let server = rpc_core::Server::builder()
        .serve(BlobsServer::new(Impl))
        .start()
        .await
        .unwrap();
    for codec in [Codec::Bincode, Codec::Json] {
        let client = rpc_core::Client::builder()
            .codec(codec)
            .connect(&server.local_addr().to_string())
            .await
            .unwrap();
        let blobs = BlobsClient::new(client);
        assert_eq!(
            blobs.reverse(vec![1, 2, 3], "x".into()).await.unwrap(),
            vec![3, 2, 1, b'x']
        );
        assert_eq!(blobs.wrap(vec![9; 10]).await.unwrap(), (vec![9; 10], 10));
        assert_eq!(
            blobs.reverse(Vec::new(), String::new()).await.unwrap(),
            Vec::<u8>::new()
        );
    }
    server.shutdown().await.unwrap();
}
