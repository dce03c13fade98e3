//! The HTTP side of `centile-api`: routes, authentication, the answer
//! cache with ETags, and resource bounds (connections, concurrent queries,
//! request time). `run(listener, state, shutdown)` serves until shutdown.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{rejection::PathRejection, Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use bytes::Bytes;
use centile_runtime::{
    config::ApiConfig,
    listener::{CappedListener, ConnectionLimits, ConnectionMetrics},
    telemetry::Readiness,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;

use crate::{
    auth::{KeyStore, Scope},
    cache::{Cache, Lookup},
    metrics::ApiMetrics,
    params::Params,
    queries::{
        self, ModelsRequest, Queries, RealtimeRequest, Request, TopModelsRequest, TrendsRequest,
        UsageRequest, WindowsRequest,
    },
    realtime, ApiError,
};

/// The OpenAPI document, exactly as kept in the repository.
pub const OPENAPI_JSON: &str = include_str!("../../../schemas/openapi/api.json");

/// Everything a request needs; shared by all connections.
#[derive(Debug)]
pub struct AppState {
    pub queries: Queries,
    pub keys: KeyStore,
    pub cache: Mutex<Cache>,
    pub metrics: ApiMetrics,
    pub settings: ApiConfig,
    pub readiness: Readiness,
    /// Free query slots; a request that finds none is answered 503.
    slots: Arc<Semaphore>,
    /// Cancelled at shutdown: live streams end so the server can stop.
    pub shutdown: CancellationToken,
    pub live: realtime::Memo,
}

impl AppState {
    pub fn new(
        queries: Queries,
        keys: KeyStore,
        settings: ApiConfig,
        metrics: ApiMetrics,
        readiness: Readiness,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            queries,
            keys,
            cache: Mutex::new(Cache::new(settings.cache_entries, settings.cache_max_bytes)),
            metrics,
            slots: Arc::new(Semaphore::new(settings.max_concurrent_queries)),
            live: realtime::Memo::default(),
            settings,
            readiness,
            shutdown,
        }
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    centile_sink::runner::now_ms().div_euclid(1000)
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/performance/trends", get(trends))
        .route("/v1/usage/stats", get(usage_stats))
        .route("/v1/usage/top-models", get(top_models))
        .route("/v1/models", get(models))
        .route("/v1/models/search", get(models_search))
        .route("/v1/models/{id}", get(model))
        .route("/v1/realtime", get(realtime_now))
        .route("/v1/realtime/stream", get(realtime_stream))
        .route("/v1/windows/status", get(windows))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { ApiError::NotFound("no such endpoint; see /openapi.json".into()) })
        .with_state(state)
        .merge(crate::assets::router())
}

/// Serves until `shutdown`, then lets requests finish until `deadline`
/// (`service.shutdown_grace`); live streams end at shutdown.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
    deadline: CancellationToken,
) -> Result<(), ApiError> {
    let listener = CappedListener::new(
        listener,
        ConnectionLimits {
            max_connections: state.settings.max_connections,
            idle_timeout: state.settings.idle_timeout,
            read_timeout: state.settings.read_timeout,
        },
        ConnectionMetrics {
            open: state.metrics.connections.clone(),
            cap_reached: state.metrics.connection_cap_reached.clone(),
            timed_out: state.metrics.connections_timed_out.clone(),
        },
    );
    let probe = tokio::spawn(watch_clickhouse(state.clone(), shutdown.clone()));
    let serving = axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(shutdown.cancelled_owned());
    tokio::select! {
        served = std::future::IntoFuture::into_future(serving) => served?,
        () = deadline.cancelled() => {
            tracing::warn!("requests still open at service.shutdown_grace; closing them");
        }
    }
    probe.abort();
    tracing::info!("api stopped: requests finished");
    Ok(())
}

/// Ready while ClickHouse answers `SELECT 1` and its schema has every
/// table this API reads; readiness logs each change and `/readyz` names
/// the reason.
async fn watch_clickhouse(state: Arc<AppState>, shutdown: CancellationToken) {
    loop {
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            state.queries.client().query("SELECT 1").fetch_one::<u8>(),
        )
        .await;
        let outcome = match answer {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer within 5 s".to_owned()),
        };
        state.metrics.clickhouse_up.set(i64::from(outcome.is_ok()));
        let up = outcome.is_ok();
        match outcome {
            Ok(()) => state.readiness.pass("clickhouse"),
            Err(reason) => state.readiness.fail(
                "clickhouse",
                format!(
                    "clickhouse does not answer `SELECT 1` in database {}: {reason} (retrying every 5 s)",
                    state.queries.database()
                ),
            ),
        }
        if up {
            match schema_behind(&state).await {
                None => state.readiness.pass("schema"),
                Some(reason) => state.readiness.fail("schema", reason),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// Why the database's schema is older than the tables this API reads
/// (the sink migrates it, so it is upgraded first), if it is.
async fn schema_behind(state: &AppState) -> Option<String> {
    let needed = centile_sink::rollup::tiers::SCHEMA_VERSION;
    let database = state.queries.database();
    let applied = tokio::time::timeout(
        Duration::from_secs(5),
        state
            .queries
            .client()
            .query(&format!(
                "SELECT toUInt32(max(version)) FROM {database}.schema_migrations"
            ))
            .fetch_one::<u32>(),
    )
    .await;
    let at = match applied {
        Ok(Ok(at)) if at >= needed => return None,
        Ok(Ok(at)) => format!("at migration {at}"),
        Ok(Err(e)) => format!("not readable ({e})"),
        Err(_) => "not readable (no answer within 5 s)".to_owned(),
    };
    Some(format!(
        "the schema of database {database} is {at}; this API reads tables of migration {needed}: \
         run the sink of this release first, it migrates (retrying every 5 s)"
    ))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let (status, body) = state.readiness.answer();
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

fn pairs(query: Option<String>) -> Vec<(String, String)> {
    query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Authenticates, checks the parameters, builds the request, answers it
/// (from the cache when the data token is unchanged), and records metrics.
async fn serve_request(
    state: Arc<AppState>,
    route: &'static str,
    headers: HeaderMap,
    query: Option<String>,
    allowed: &'static [&'static str],
    build: impl FnOnce(&Params, &Scope, &AppState) -> Result<Request, ApiError>,
) -> Response {
    let started = Instant::now();
    let response = match state.slots.clone().try_acquire_owned() {
        Err(_) => ApiError::Busy(format!(
            "more than {} requests at once; try again",
            state.settings.max_concurrent_queries
        ))
        .into_response(),
        Ok(_permit) => {
            let work = async {
                let scope = state.keys.authenticate(&headers)?;
                let params = Params::new(pairs(query), allowed)?;
                let request = build(&params, &scope, &state)?;
                answer(&state, route, &scope, &request, &headers).await
            };
            match tokio::time::timeout(state.settings.request_timeout, work).await {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => e.into_response(),
                Err(_) => ApiError::Busy(format!(
                    "the query ran past api.request_timeout ({:?}); narrow it or try again",
                    state.settings.request_timeout
                ))
                .into_response(),
            }
        }
    };
    state
        .metrics
        .requests
        .with_label_values(&[route, response.status().as_str()])
        .inc();
    state
        .metrics
        .duration
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn answer(
    state: &AppState,
    route: &str,
    scope: &Scope,
    request: &Request,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let enabled = state.cache.lock().expect("cache lock").enabled();
    let token = if enabled {
        state.queries.token(request).await?
    } else {
        None
    };
    let Some(token) = token else {
        state.metrics.cache.with_label_values(&["bypass"]).inc();
        let body = serde_json::to_vec(&state.queries.answer(request).await?).expect("json");
        return Ok(json_response(Bytes::from(body), None));
    };
    let etag = format!("\"{token}\"");
    let key = format!("{route}|{}|{request:?}", scope.label());
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let cached = state.cache.lock().expect("cache lock").get(&key, &token);
    if matches {
        state
            .metrics
            .cache
            .with_label_values(&["not_modified"])
            .inc();
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        set_validators(&mut response, &etag);
        return Ok(response);
    }
    let body = match cached {
        Lookup::Hit(body) => {
            state.metrics.cache.with_label_values(&["hit"]).inc();
            body
        }
        Lookup::Miss => {
            state.metrics.cache.with_label_values(&["miss"]).inc();
            let body = Bytes::from(
                serde_json::to_vec(&state.queries.answer(request).await?).expect("json"),
            );
            let mut cache = state.cache.lock().expect("cache lock");
            cache.put(key, token, body.clone());
            state.metrics.cache_entries.set(cache.len() as i64);
            state.metrics.cache_bytes.set(cache.bytes() as i64);
            body
        }
    };
    Ok(json_response(body, Some(&etag)))
}

fn set_validators(response: &mut Response, etag: &str) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    // Stored answers may be reused only after revalidation (the ETag).
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
}

fn json_response(body: Bytes, etag: Option<&str>) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    match etag {
        Some(etag) => set_validators(&mut response, etag),
        None => {
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    response
}

/// The tenant a request reads, checked against its key.
fn tenant(p: &Params, scope: &Scope) -> Result<Option<String>, ApiError> {
    scope.tenant(p.text("tenant_id")?)
}

async fn trends(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    serve_request(
        s,
        "/v1/performance/trends",
        headers,
        q,
        queries::trends_parameters(),
        |p, scope, s| {
            Ok(Request::Trends(TrendsRequest::parse(
                p,
                tenant(p, scope)?,
                now(),
                s.settings.max_buckets,
            )?))
        },
    )
    .await
}

async fn usage_stats(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    serve_request(
        s,
        "/v1/usage/stats",
        headers,
        q,
        queries::usage_parameters(),
        |p, scope, _| {
            Ok(Request::Usage(UsageRequest::parse(
                p,
                tenant(p, scope)?,
                now(),
            )?))
        },
    )
    .await
}

async fn top_models(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    serve_request(
        s,
        "/v1/usage/top-models",
        headers,
        q,
        queries::top_models_parameters(),
        |p, scope, _| {
            Ok(Request::TopModels(TopModelsRequest::parse(
                p,
                tenant(p, scope)?,
                now(),
            )?))
        },
    )
    .await
}

/// Models seen in events are a tenant's data: a tenant key sees its own.
fn models_tenant(scope: &Scope) -> Option<String> {
    match scope {
        Scope::Admin => None,
        Scope::Tenant(t) => Some(t.clone()),
    }
}

async fn models(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    serve_request(s, "/v1/models", headers, q, &[], |_, scope, _| {
        Ok(Request::Models(ModelsRequest::all(
            models_tenant(scope),
            now(),
        )))
    })
    .await
}

async fn model(
    State(s): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    serve_request(s, "/v1/models/{id}", headers, q, &[], move |_, scope, _| {
        // Axum's own rejection (invalid UTF-8) is plain text; ours names the parameter.
        let Path(id) = id.map_err(|e| ApiError::bad("id", e.body_text()))?;
        if id.is_empty() || id.chars().count() > 256 || id.chars().any(char::is_control) {
            return Err(ApiError::bad(
                "id",
                "must be 1 to 256 characters without control characters",
            ));
        }
        Ok(Request::Models(ModelsRequest::one(
            id,
            models_tenant(scope),
            now(),
        )))
    })
    .await
}

async fn models_search(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    serve_request(
        s,
        "/v1/models/search",
        headers,
        q,
        queries::search_parameters(),
        |p, scope, _| {
            Ok(Request::Models(ModelsRequest::search(
                p,
                models_tenant(scope),
                now(),
            )?))
        },
    )
    .await
}

async fn realtime_now(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    serve_request(
        s,
        "/v1/realtime",
        headers,
        q,
        queries::realtime_parameters(),
        |p, scope, _| {
            Ok(Request::Realtime(RealtimeRequest::parse(
                p,
                tenant(p, scope)?,
                now(),
            )?))
        },
    )
    .await
}

async fn windows(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    serve_request(s, "/v1/windows/status", headers, q, &[], |_, _, _| {
        Ok(Request::Windows(WindowsRequest::at(now())))
    })
    .await
}

async fn realtime_stream(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let route = "/v1/realtime/stream";
    let checked = (|| {
        let scope = s.keys.authenticate(&headers)?;
        let params = Params::new(pairs(q), queries::realtime_parameters())?;
        tenant(&params, &scope)
    })();
    let response = match checked {
        Ok(tenant_id) => realtime::stream(s.clone(), tenant_id),
        Err(e) => e.into_response(),
    };
    s.metrics
        .requests
        .with_label_values(&[route, response.status().as_str()])
        .inc();
    response
}
