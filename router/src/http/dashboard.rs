//! The dashboard: one static page on the admin listener (`GET /` and
//! `GET /dashboard`) that draws what the admin API and `/metrics` answer. The
//! page is built into the binary and loads nothing from elsewhere, so it works
//! on a host without internet access; it holds no data itself, so it is served
//! without the admin token, and asks for the token to send with its requests.

use axum::extract::Request;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};

/// The page: HTML with its CSS and script inline.
const PAGE: &str = include_str!("dashboard.html");

/// What the page may do: its own inline script and style, requests to this
/// listener only, and nothing framed (it carries redrive and reload buttons).
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// Whether `request` asks for the page (which needs no token).
pub(super) fn is_page(request: &Request) -> bool {
    matches!(*request.method(), Method::GET | Method::HEAD)
        && matches!(request.uri().path(), "/" | "/dashboard")
}

/// `GET /dashboard` (and `/`): the page.
pub(super) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}
