//! gRPC over a bare HTTP/2 connection (the `h2` crate), for tests that must see the connection
//! itself: when the server closes it, or calls to paths no generated client has.

use std::net::SocketAddr;

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use tokio::{net::TcpStream, task::JoinHandle};

/// An HTTP/2 connection to `addr`, driven in the background; the handle finishes when the
/// server closes the connection.
pub async fn connect(addr: SocketAddr) -> (SendRequest<Bytes>, JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (send, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let driven = tokio::spawn(async move {
        let _ = connection.await;
    });
    (send, driven)
}

/// Calls `path` (`/package.Service/Method`) with an empty message and no token.
pub async fn call(send: &mut SendRequest<Bytes>, path: &str) -> ResponseFuture {
    let request = http::Request::post(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    *send = send.clone().ready().await.expect("connection ready");
    let (response, mut body) = send.send_request(request, false).expect("send");
    // One gRPC frame: not compressed, length 0.
    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .expect("body");
    response
}
