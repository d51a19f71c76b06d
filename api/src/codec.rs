//! The codec of every `invest.v1` call: prost, with a small first encode buffer.
//!
//! tonic's default allocates 8 KiB per call for encoding and keeps it as long as the call
//! lasts; a watch stream lasts as long as its client wants and sends a few hundred bytes at a
//! time, so 100,000 open watches held 800 MiB of buffers that were almost all empty. The buffer
//! still grows to fit any message (only the first allocation is smaller), so large answers
//! cost a few more reallocations and nothing else.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// First capacity of a call's encode buffer, in bytes: a status update fits.
pub const ENCODE_BUFFER: usize = 512;

/// tonic's default: how much a stream encodes before it lets the connection send it.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// [`ProstCodec`] with an [`ENCODE_BUFFER`]-byte first encode buffer.
#[derive(Debug, Clone)]
pub struct SmallCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for SmallCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::new(ENCODE_BUFFER, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::default().decoder()
    }
}
