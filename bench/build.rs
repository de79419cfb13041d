//! Generates the tonic echo service from `proto/echo.proto` (needs `protoc`, which
//! `scripts/install-deps.sh` installs).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&["proto/echo.proto"], &["proto"])?;
    Ok(())
}
