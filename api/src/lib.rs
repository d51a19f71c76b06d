//! The `invest.v1` API: generated messages, clients and servers, and the descriptor set that
//! server reflection serves.

pub mod codec;

/// Package `invest.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all, unused_qualifications)]
    tonic::include_proto!("invest.v1");
}

/// Encoded `FileDescriptorSet` of `invest.v1`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("invest_descriptor");
