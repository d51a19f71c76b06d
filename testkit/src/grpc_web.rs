//! A real grpc-web client over HTTP/1.1, as a browser's connect-web transport talks to the
//! services: tonic's generated clients over `tonic-web`'s client layer and a hyper HTTP/1.1
//! client.

use std::net::SocketAddr;

use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tonic::body::Body;
use tonic_web::{GrpcWebCall, GrpcWebClientLayer, GrpcWebClientService};

/// What generated clients are built on: `XServiceClient::with_origin(channel, uri)`.
pub type GrpcWebChannel = GrpcWebClientService<Client<HttpConnector, GrpcWebCall<Body>>>;

/// A grpc-web channel to `addr`, HTTP/1.1 only.
pub fn channel() -> GrpcWebChannel {
    let client = Client::builder(TokioExecutor::new()).build_http();
    tower::Layer::layer(&GrpcWebClientLayer::new(), client)
}

/// The origin URI of `addr`, for `with_origin`.
pub fn origin(addr: SocketAddr) -> http::Uri {
    format!("http://{addr}")
        .parse()
        .unwrap_or_else(|e| panic!("origin of {addr}: {e}"))
}

/// A CORS preflight for a grpc-web POST from `origin`: the response status and headers.
pub async fn preflight(addr: SocketAddr, path: &str, origin: &str) -> (u16, HeaderMap) {
    let client: Client<HttpConnector, Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let request = Request::builder()
        .method(Method::OPTIONS)
        .uri(format!("http://{addr}{path}"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-grpc-web",
        )
        .body(Empty::new())
        .expect("preflight request");
    let response = client.request(request).await.expect("preflight answered");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let _ = response.into_body().collect().await;
    (status, headers)
}

/// A grpc-web POST of an empty message from `origin` (as a browser sends it): the response
/// headers, where CORS says what scripts may read.
pub async fn post_from(addr: SocketAddr, path: &str, origin: &str) -> HeaderMap {
    let client: Client<HttpConnector, http_body_util::Full<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    // A grpc-web data frame: flag 0, length 0.
    let frame = bytes::Bytes::from_static(&[0, 0, 0, 0, 0]);
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{addr}{path}"))
        .header("origin", origin)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(http_body_util::Full::new(frame))
        .expect("grpc-web request");
    let response = client.request(request).await.expect("grpc-web answered");
    let headers = response.headers().clone();
    let _ = response.into_body().collect().await;
    headers
}
