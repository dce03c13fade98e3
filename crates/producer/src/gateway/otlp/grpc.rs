//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`
//! on `gateway.otlp_grpc_addr`, with the same keys (`authorization: Bearer
//! <key>` metadata), limits and answers as OTLP/HTTP.
//!
//! Bounds: connections go through the gateway's [`CappedListener`] (cap,
//! idle and read timeouts); a message may be `gateway.max_body_bytes` long
//! once inflated; each call has `gateway.read_timeout`; each connection
//! carries a bounded number of concurrent streams. A refusal worth a retry
//! (rate limit, broker unavailable) carries a `google.rpc.RetryInfo` both in
//! the status details and as the `google.rpc.retryinfo-bin` trailer, where
//! OpenTelemetry's exporters look for it.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::serve::Listener;
use centile_runtime::listener::{CappedListener, CappedStream};
use opentelemetry_proto::tonic::collector::trace::v1::{
    trace_service_server::{TraceService, TraceServiceServer},
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
};
use tokio_util::sync::CancellationToken;
use tonic::{
    codec::CompressionEncoding,
    metadata::{MetadataMap, MetadataValue},
    transport::server::Connected,
};

use super::http::{grpc_code, ProtoAny, RpcStatus};
use crate::gateway::{
    answer::Rejection, ingest::admit_key, metrics::GRPC_EXPORT, Gateway, GatewayError,
};

/// Concurrent calls on one connection; more wait for a free stream.
const STREAMS_PER_CONNECTION: u32 = 16;

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

struct Export {
    gateway: Arc<Gateway>,
}

#[tonic::async_trait]
impl TraceService for Export {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let started = Instant::now();
        let gateway = &self.gateway;
        let headers = request.metadata().clone().into_headers();
        let answer = async {
            let grant = admit_key(gateway, &headers)?;
            super::export(gateway, &grant.tenant, request.get_ref()).await
        }
        .await;
        let (code, answer) = match answer {
            Ok(exported) => {
                gateway.metrics.count_spans(&exported);
                (
                    axum::http::StatusCode::OK,
                    Ok(tonic::Response::new(exported.response())),
                )
            }
            Err(rejection) => (rejection.status(), Err(status_of(&rejection))),
        };
        gateway.metrics.answered(GRPC_EXPORT, code, started);
        answer
    }
}

/// A refusal as a gRPC status, with `RetryInfo` when a retry may succeed.
fn status_of(rejection: &Rejection) -> tonic::Status {
    let code = grpc_code(rejection);
    let message = rejection.message();
    let Some(wait) = rejection.retry_after() else {
        return tonic::Status::new(code, message);
    };
    let retry = RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: wait.as_secs() as i64,
            nanos: wait.subsec_nanos() as i32,
        }),
    }
    .encode_to_vec();
    let details = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![ProtoAny {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: retry.clone(),
        }],
    }
    .encode_to_vec();
    let mut metadata = MetadataMap::new();
    metadata.insert_bin(
        "google.rpc.retryinfo-bin",
        MetadataValue::from_bytes(&retry),
    );
    tonic::Status::with_details_and_metadata(code, message, details.into(), metadata)
}

/// Serves OTLP/gRPC on `listener` until `shutdown`; calls still running at
/// `deadline` are cut off.
pub async fn run(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
    deadline: CancellationToken,
) -> Result<(), GatewayError> {
    let settings = &gateway.settings;
    let listener = CappedListener::new(
        listener,
        gateway.connection_limits(),
        gateway.metrics.connections.clone(),
    );
    let incoming = futures::stream::unfold(listener, |mut listener| async move {
        let (stream, _) = listener.accept().await;
        Some((Ok::<_, io::Error>(GrpcStream(stream)), listener))
    });
    let service = TraceServiceServer::new(Export {
        gateway: gateway.clone(),
    })
    .accept_compressed(CompressionEncoding::Gzip)
    .send_compressed(CompressionEncoding::Gzip)
    .max_decoding_message_size(settings.max_body_bytes);
    let serving = tonic::transport::Server::builder()
        .timeout(settings.read_timeout.max(settings.ack_timeout) + Duration::from_secs(1))
        .max_concurrent_streams(STREAMS_PER_CONNECTION)
        .concurrency_limit_per_connection(STREAMS_PER_CONNECTION as usize)
        .http2_max_header_list_size(64 * 1024)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned());
    tokio::select! {
        served = serving => served.map_err(|e| GatewayError::Io(io::Error::other(e.to_string()))),
        () = deadline.cancelled() => {
            tracing::warn!("gRPC calls still open at service.shutdown_grace; closing them");
            Ok(())
        }
    }
}

/// A capped connection as tonic takes it.
struct GrpcStream(CappedStream);

impl Connected for GrpcStream {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for GrpcStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for GrpcStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
