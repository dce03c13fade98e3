//! The gateway's OpenAPI 3 description, `schemas/openapi/gateway.json`,
//! compiled in and served at `/openapi.json`.

use axum::{http::header, response::IntoResponse};

/// The OpenAPI document, exactly as kept in the repository.
pub const OPENAPI_JSON: &str = include_str!("../../../../schemas/openapi/gateway.json");

pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}
