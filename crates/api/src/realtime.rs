//! `GET /v1/realtime/stream`: the live view as Server-Sent Events, pushed
//! at once and then every `api.realtime_interval` (at most 5 s). Answers
//! are shared: however many dashboards are open, one tenant's live view is
//! computed at most once per half interval ([`Memo`]). Streams end at
//! shutdown, so they never hold the server open.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::response::{
    sse::{Event, KeepAlive, Sse},
    IntoResponse, Response,
};
use futures::stream;
use serde_json::Value;

use crate::{
    queries::{RealtimeRequest, Request},
    server::{now, AppState},
};

/// Recent live answers per tenant scope (`None`: every tenant).
#[derive(Debug, Default)]
pub struct Memo {
    answers: Mutex<HashMap<Option<String>, (Instant, Value)>>,
}

impl Memo {
    async fn answer(&self, state: &AppState, tenant_id: &Option<String>) -> Value {
        let fresh_for = state.settings.realtime_interval / 2;
        if let Some((at, value)) = self.answers.lock().expect("memo lock").get(tenant_id) {
            if at.elapsed() < fresh_for {
                return value.clone();
            }
        }
        let request = Request::Realtime(RealtimeRequest {
            tenant_id: tenant_id.clone(),
            now: now(),
        });
        match state.queries.answer(&request).await {
            Ok(value) => {
                let mut answers = self.answers.lock().expect("memo lock");
                // Bounded by the number of tenants with an open stream.
                answers.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(60));
                answers.insert(tenant_id.clone(), (Instant::now(), value.clone()));
                value
            }
            Err(e) => {
                tracing::warn!(error = %e, "live view failed");
                serde_json::json!({ "error": "the analytics database did not answer; retrying" })
            }
        }
    }
}

/// Decrements the open-streams gauge when the stream is dropped.
struct Open(Arc<AppState>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.metrics.stream_clients.dec();
    }
}

pub fn stream(state: Arc<AppState>, tenant_id: Option<String>) -> Response {
    state.metrics.stream_clients.inc();
    let open = Open(state.clone());
    let interval = state.settings.realtime_interval;
    let events = stream::unfold((open, true), move |(open, first)| {
        let tenant_id = tenant_id.clone();
        async move {
            let state = open.0.clone();
            if !first {
                tokio::select! {
                    _ = state.shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(interval) => {}
                }
            }
            if state.shutdown.is_cancelled() {
                return None;
            }
            let value = state.live.answer(&state, &tenant_id).await;
            let name = if value.get("error").is_some() {
                "error"
            } else {
                "realtime"
            };
            let event = Event::default().event(name).data(value.to_string());
            Some((Ok::<_, Infallible>(event), (open, false)))
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
