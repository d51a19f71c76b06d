//! Browsers: grpc-web over HTTP/1.1 on the gRPC port, with CORS for the configured origins only.

use api::v1::{self as pb, investment_service_client::InvestmentServiceClient};
use testkit::{Bearer, grpc_web};
use tonic::{Code, service::interceptor::InterceptedService};

use crate::support::*;

const DASHBOARD: &str = "http://127.0.0.1:5173";

#[tokio::test]
async fn grpc_web_over_http1_answers_calls_and_errors_with_details() {
    let app = spawn_app().await;
    let alice = investor(&app, "1000.00", "1.00").await;
    let mut client = InvestmentServiceClient::with_origin(
        InterceptedService::new(
            grpc_web::channel(),
            Bearer(Some(testkit::token(alice.user_id))),
        ),
        grpc_web::origin(app.addr),
    );

    let deals = client
        .list_deals(pb::ListDealsRequest::default())
        .await
        .expect("unary over grpc-web")
        .into_inner();
    assert_eq!(deals.deals.len(), 1);

    let refused = client
        .create_investment(create_request(&alice, 0, ""))
        .await
        .expect_err("0 shares");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&refused),
        ["shares"],
        "details survive grpc-web"
    );
}

#[tokio::test]
async fn the_cors_preflight_admits_the_configured_origin_only() {
    let app = spawn_app().await;
    let path = "/invest.v1.InvestmentService/ListDeals";

    let (status, headers) = grpc_web::preflight(app.addr, path, DASHBOARD).await;
    assert!((200..300).contains(&status), "{status}");
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(DASHBOARD.as_bytes())
    );
    let allowed = headers
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("x-grpc-web"),
        "{allowed}"
    );

    let (_, foreign) = grpc_web::preflight(app.addr, path, "http://evil.example").await;
    assert!(foreign.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn scripts_of_the_configured_origin_may_read_the_grpc_status_headers() {
    let app = spawn_app().await;
    let headers = grpc_web::post_from(
        app.addr,
        "/invest.v1.InvestmentService/ListDeals",
        DASHBOARD,
    )
    .await;
    let exposed = headers
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    for header in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(header), "{header} not exposed: {exposed}");
    }
    assert_eq!(
        headers.get("grpc-status").map(|v| v.as_bytes()),
        Some(b"16".as_slice()),
        "no token: UNAUTHENTICATED, readable by the page"
    );
}
