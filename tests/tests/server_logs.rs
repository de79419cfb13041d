//! Names from the wire cannot forge or flood the provider's log: a newline cannot start a
//! line of its own, terminal escapes are shown escaped, long names are cut, a burst of bad
//! requests writes a few warnings and then one that counts what it left out, and the error
//! replies that quote the names are escaped and cut the same way.

use std::time::Duration;

use rpc_core::protocol::{Codec, Frame, Status};
use rpc_core::Server;
use tests::logging::CapturedLogs;
use tests::raw::{encode, read_frame, WellBehaved, CALC};
use tests::servers::example_server;
use tests::wait::POLL;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const FORGED: &str = "ERROR forged: admin logged in";

fn hostile(prefix: &str) -> String {
    format!("{prefix}\n{FORGED}\u{1b}[31m{}", "x".repeat(60_000))
}

/// Lines of the log that report `what`, with the `suppressed` count each carries.
fn reports(log: &str, what: &str) -> Vec<u64> {
    log.lines()
        .filter(|line| line.contains(what))
        .map(|line| {
            line.split("suppressed=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

#[tokio::test]
async fn wire_names_cannot_forge_or_flood_log_lines_or_replies() {
    let log = CapturedLogs::default();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(log.clone())
        .init();
    let server = example_server(Server::builder()).await;
    let good = WellBehaved::start(server.local_addr()).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let body = Codec::Bincode.encode(&()).unwrap();
    let unknown_service = Frame::request(0, Codec::Bincode, 0, hostile("svc"), "m", body.clone());
    let unknown_method = Frame::request(0, Codec::Bincode, 0, CALC, hostile("m"), body.clone());
    const BURST: usize = 200;
    for (frame, status) in [
        (&unknown_service, Status::UnknownService),
        (&unknown_method, Status::UnknownMethod),
    ] {
        let wire = encode(frame);
        for _ in 0..BURST {
            stream.write_all(&wire).await.unwrap();
            let reply = read_frame(&mut stream, Duration::from_secs(10))
                .await
                .expect("connection closed");
            assert_eq!(reply.status, status);
            let text = String::from_utf8_lossy(&reply.body);
            assert!(
                reply.body.len() < 512,
                "a {} byte error reply",
                reply.body.len()
            );
            assert!(!text.contains('\n') && !text.contains('\u{1b}'), "{text:?}");
            assert!(text.contains("\\n") && text.contains("\\u{1b}"), "{text:?}");
        }
    }

    let text = log.text();
    assert!(!text.contains('\u{1b}'), "a raw escape reached the log");
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with(FORGED),
            "forged line: {line:?}"
        );
        assert!(line.len() < 1024, "a {}-byte log line", line.len());
    }
    let service_lines = reports(&text, "request for unknown service").len();
    let method_lines = reports(&text, "rejected request").len();
    assert!(
        (1..=10).contains(&service_lines) && (1..=10).contains(&method_lines),
        "{BURST} bad requests each wrote {service_lines} and {method_lines} lines:\n{text}"
    );
    assert!(
        text.contains(&format!("\\n{FORGED}\\u{{1b}}[31mxxx")),
        "the name is not shown escaped:\n{text}"
    );

    // Once the window passes, the next warning says how many were left out.
    let wire = encode(&unknown_service);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        stream.write_all(&wire).await.unwrap();
        read_frame(&mut stream, Duration::from_secs(10))
            .await
            .expect("connection closed");
        let text = log.text();
        if reports(&text, "request for unknown service")
            .iter()
            .any(|&n| n > 0)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no warning counted the suppressed ones:\n{text}"
        );
        tokio::time::sleep(POLL).await;
    }
    let suppressed: u64 = reports(&log.text(), "request for unknown service")
        .iter()
        .sum();
    assert!(
        suppressed >= (BURST - 10) as u64,
        "{suppressed} counted as suppressed"
    );
    good.served_more(30, Duration::from_secs(10)).await;
    good.finish().await;
}
