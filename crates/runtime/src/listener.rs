//! A listener that bounds connections, shared by the HTTP servers (the
//! gateway and the query API): at most `max_connections` open at once
//! (further ones wait in the kernel's listen backlog, not in memory); a
//! connection that neither sends nor receives for `idle_timeout` is closed;
//! and one request may take at most `read_timeout` to arrive, from its first
//! byte until the server starts answering. So idle, slow-header,
//! slow-body and never-reading clients cannot hold the server's file
//! descriptors, memory or shutdown.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};

use prometheus::{IntCounter, IntGauge};

/// The bounds of one server's connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub read_timeout: Duration,
}

/// Where a server counts its connections (its own metric names).
#[derive(Debug, Clone)]
pub struct ConnectionMetrics {
    /// Open connections.
    pub open: IntGauge,
    /// Times the cap was reached.
    pub cap_reached: IntCounter,
    /// Connections closed for idling or for a request that arrived too slowly.
    pub timed_out: IntCounter,
}

#[derive(Debug)]
pub struct CappedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    limits: ConnectionLimits,
    metrics: ConnectionMetrics,
}

impl CappedListener {
    pub fn new(inner: TcpListener, limits: ConnectionLimits, metrics: ConnectionMetrics) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
            metrics,
        }
    }
}

impl axum::serve::Listener for CappedListener {
    type Io = CappedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                self.metrics.cap_reached.inc();
                tracing::warn!(
                    open = self.metrics.open.get(),
                    limit = self.limits.max_connections,
                    "connection cap (max_connections) reached; new connections wait in the backlog until one closes"
                );
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
        };
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    self.metrics.open.inc();
                    let stream = CappedStream {
                        stream,
                        idle: Box::pin(tokio::time::sleep(self.limits.idle_timeout)),
                        limits: self.limits,
                        reading_since: None,
                        _permit: permit,
                        metrics: self.metrics.clone(),
                    };
                    return (stream, addr);
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off
                    // instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection holding one of the listener's slots until it closes.
#[derive(Debug)]
pub struct CappedStream {
    stream: TcpStream,
    idle: Pin<Box<Sleep>>,
    limits: ConnectionLimits,
    /// When the request being read began to arrive; cleared when the
    /// server writes its answer.
    reading_since: Option<Instant>,
    _permit: OwnedSemaphorePermit,
    metrics: ConnectionMetrics,
}

impl CappedStream {
    fn touch(&mut self) {
        let deadline = Instant::now() + self.limits.idle_timeout;
        self.idle.as_mut().reset(deadline);
    }

    fn check_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.idle.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.metrics.timed_out.inc();
                Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle past idle_timeout",
                ))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// A request trickling in byte by byte keeps the connection from
    /// idling; this bounds the whole of its arrival.
    fn check_read_deadline(&mut self) -> Result<(), io::Error> {
        match self.reading_since {
            Some(since) if since.elapsed() > self.limits.read_timeout => {
                self.metrics.timed_out.inc();
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request still arriving past read_timeout",
                ))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for CappedStream {
    fn drop(&mut self) {
        self.metrics.open.dec();
    }
}

use std::future::Future;

impl AsyncRead for CappedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check_read_deadline() {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.touch();
                if buf.filled().len() > before && this.reading_since.is_none() {
                    this.reading_since = Some(Instant::now());
                }
                Poll::Ready(result)
            }
            Poll::Pending => match this.check_idle(cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.touch();
                // The server answers: the request has arrived.
                this.reading_since = None;
                Poll::Ready(result)
            }
            Poll::Pending => match this.check_idle(cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
