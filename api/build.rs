//! Generates the `invest.v1` code with a vendored `protoc`, so `cargo build` needs no system
//! protoc.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    let files = [
        "allocation_part.proto",
        "investment.proto",
        "allocation.proto",
        "messages.proto",
    ]
    .map(|f| root.join("invest/v1").join(f));
    let out = PathBuf::from(env::var("OUT_DIR")?);

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    tonic_prost_build::configure()
        // 512 bytes of encode buffer per call instead of 8 KiB (src/codec.rs says why).
        .codec_path("crate::codec::SmallCodec")
        .file_descriptor_set_path(out.join("invest_descriptor.bin"))
        .compile_with_config(config, &files, std::slice::from_ref(&root))?;

    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
