//! Generates the tonic echo service from `proto/echo.proto` (needs `protoc`, which
//! `scripts/install-deps.sh` installs) and, with the `volo` feature, the Volo Thrift echo from
//! `idl/echo.thrift`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&["proto/echo.proto"], &["proto"])?;
    #[cfg(feature = "volo")]
    {
        println!("cargo:rerun-if-changed=idl/echo.thrift");
        volo_build::Builder::thrift()
            .add_service("idl/echo.thrift")
            .write()?;
    }
    Ok(())
}
