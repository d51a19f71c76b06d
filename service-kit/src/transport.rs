//! What the HTTP layer of a port admits besides connections (those are [`crate::listener`]'s):
//! browsers from other origins (grpc-web with CORS) and the code of an over-size message.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Why the browser settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CorsError {
    /// `*` would let any web page call the API with a user's token.
    #[error("CORS_ALLOWED_ORIGINS must list origins; a wildcard is refused")]
    Wildcard,
    /// Not a valid header value.
    #[error("CORS_ALLOWED_ORIGINS has an invalid origin: {0:?}")]
    Invalid(String),
}

/// CORS for grpc-web callers from `origins` (exact matches, never a wildcard): the preflight is
/// answered, and scripts may read the gRPC status, message and details.
pub fn cors(origins: &[String]) -> Result<CorsLayer, CorsError> {
    let origins = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .map(|o| match o {
            "*" => Err(CorsError::Wildcard),
            o => HeaderValue::from_str(o).map_err(|_| CorsError::Invalid(o.to_owned())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let header = HeaderName::from_static;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            header("authorization"),
            header("content-type"),
            header("x-grpc-web"),
            header("x-user-agent"),
            header("grpc-timeout"),
            header("traceparent"),
        ])
        .expose_headers([
            header("grpc-status"),
            header("grpc-message"),
            header("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(600)))
}

/// tonic's codec answers an over-size message with `OUT_OF_RANGE`; the conventional code for a
/// request too large is `RESOURCE_EXHAUSTED`. Our handlers never answer `OUT_OF_RANGE`
/// themselves, so every one in a response head is the codec's limit.
pub fn size_limit_status<B>(mut response: Response<B>) -> Response<B> {
    let out_of_range = HeaderValue::from_static("11");
    if response.headers().get("grpc-status") == Some(&out_of_range) {
        response
            .headers_mut()
            .insert("grpc-status", HeaderValue::from_static("8"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_origin_is_refused() {
        assert!(matches!(cors(&["*".into()]), Err(CorsError::Wildcard)));
        assert!(cors(&["http://127.0.0.1:5173".into(), String::new()]).is_ok());
    }
}
