//! The TCP front end: accepts connections and runs one tokio task per connection.
//!
//! Each connection's first bytes decide its transport and protocol ([`codec::detect`]); its
//! requests are then decoded, run through the [`Service`] one at a time (Thrift clients wait
//! for each reply, and running them in order keeps each client's operations in order), and
//! answered in the same transport and protocol.
//!
//! Footprint: an idle connection holds no buffer. The task waits for readability with an
//! empty buffer and only then reserves memory to read into, so thousands of idle clients cost
//! little more than their sockets and task state.
//!
//! Shutdown: when the `shutdown` future completes, the listener closes, idle connections close,
//! and a connection in the middle of a request finishes it and sends the reply before closing;
//! after `SHUTDOWN_TIMEOUT` whatever is left is dropped.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::codec::{
    self, AppExceptionKind, DecodeError, Incoming, Protocol, Reply, ReplyBody, Transport,
};
use crate::config::ServerConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::observe::Metrics;
use crate::service::{ClientFailure, Service};
use crate::tls::{self, Tls};

/// How much to read at a time when the message's size is not known yet.
const READ_CHUNK: usize = 8 * 1024;

/// A reply buffer's first capacity: most replies fit (a 1 KiB value's grows once).
const REPLY_BUFFER: usize = 1024;

/// Serves `listener` until `shutdown` completes, then drains connections.
pub async fn run(
    listener: TcpListener,
    service: Arc<Service>,
    config: ServerConfig,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let limit = config.max_connections;
    let permits = Arc::new(Semaphore::new(limit));
    let (stop_tx, stop_rx) = watch::channel(false);
    let conn = Arc::new(ConnectionSettings {
        max_frame_size: config.max_frame_size,
        idle_timeout: config.idle_timeout,
        metrics: service.metrics().clone(),
        tls,
    });
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of descriptors or a connection reset before accept: not fatal. Back off a
                // little so a full descriptor table does not turn into a busy loop.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit, "connection limit reached; closing new connection");
            drop(stream);
            continue;
        };
        let service = service.clone();
        let conn = conn.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            conn.metrics.connected();
            if let Err(e) = serve_tcp(stream, peer, &service, &conn, stop).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            conn.metrics.disconnected();
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing requests in flight");
    let _ = stop_tx.send(true);
    let all = u32::try_from(limit).unwrap_or(u32::MAX);
    match tokio::time::timeout(config.shutdown_timeout, permits.acquire_many(all)).await {
        Ok(_) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!(
            open = limit - permits.available_permits(),
            "shutdown timeout: dropping connections still open"
        ),
    }
    Ok(())
}

struct ConnectionSettings {
    max_frame_size: usize,
    idle_timeout: Option<Duration>,
    metrics: Arc<Metrics>,
    tls: Option<Tls>,
}

/// How long a client has for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client connection: plain TCP, or TLS over it.
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Io {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.write_all(data).await,
            Io::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.shutdown().await,
            Io::Tls(s) => s.shutdown().await,
        }
    }
}

/// Decides between TLS and plain Thrift by the first byte, refuses what the server does not
/// take (with one log line each), and serves the rest.
async fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    service: &Service,
    settings: &ConnectionSettings,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    // Requests and replies are small and each waits for the other: Nagle would only add delay.
    stream.set_nodelay(true)?;
    let Some(first) = first_byte(&stream, settings, &mut stop).await? else {
        return Ok(());
    };
    let io = match (first == tls::HANDSHAKE_RECORD, &settings.tls) {
        (true, None) => {
            tracing::info!(%peer, "TLS handshake refused: this server has no certificate \
                (TLS_CERT_FILE, TLS_KEY_FILE); closing");
            return Ok(());
        }
        (true, Some(tls)) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await {
                Ok(Ok(stream)) => Io::Tls(Box::new(stream)),
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, mutual = tls.mutual,
                        "TLS handshake failed; closing");
                    return Ok(());
                }
                Err(_) => {
                    tracing::info!(%peer, timeout = ?HANDSHAKE_TIMEOUT,
                        "TLS handshake not finished in time; closing");
                    return Ok(());
                }
            }
        }
        (false, Some(tls)) if tls.required => {
            tracing::info!(%peer, "plaintext connection refused: this server requires TLS \
                (TLS_REQUIRED or TLS_CLIENT_CA_FILE); closing");
            return Ok(());
        }
        (false, _) => Io::Plain(stream),
    };
    serve_connection(io, peer, service, settings, stop).await
}

/// Awaits `wait` while the connection is idle (between requests): `None` when the server is
/// stopping or `IDLE_TIMEOUT` passes first.
async fn while_idle<T>(
    settings: &ConnectionSettings,
    stop: &mut watch::Receiver<bool>,
    wait: impl Future<Output = io::Result<T>>,
) -> Option<io::Result<T>> {
    if *stop.borrow() {
        return None;
    }
    let timed = async {
        match settings.idle_timeout {
            Some(t) => tokio::time::timeout(t, wait).await.ok(),
            None => Some(wait.await),
        }
    };
    tokio::select! {
        r = timed => r,
        _ = stop.changed() => None,
    }
}

/// Waits for a connection's first byte without taking it; `None` when the peer closes first,
/// the server stops, or the idle timeout passes.
async fn first_byte(
    stream: &TcpStream,
    settings: &ConnectionSettings,
    stop: &mut watch::Receiver<bool>,
) -> io::Result<Option<u8>> {
    let mut byte = [0u8; 1];
    match while_idle(settings, stop, stream.peek(&mut byte)).await {
        None | Some(Ok(0)) => Ok(None),
        Some(Ok(_)) => Ok(Some(byte[0])),
        Some(Err(e)) => Err(e),
    }
}

/// Why a connection stopped reading.
enum ReadEnd {
    /// Data arrived.
    Data,
    /// The peer closed, the server is stopping, or the connection was idle too long.
    Close,
}

async fn serve_connection(
    mut stream: Io,
    peer: SocketAddr,
    service: &Service,
    settings: &ConnectionSettings,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut buf = BytesMut::new();
    let mut kind: Option<(Transport, Protocol)> = None;
    loop {
        let (transport, protocol) = match kind {
            Some(k) => k,
            None => match codec::detect(&buf) {
                Ok(Some(k)) => {
                    tracing::debug!(%peer, transport = %k.0, protocol = %k.1, "new client");
                    kind = Some(k);
                    k
                }
                Ok(None) => {
                    if let ReadEnd::Close =
                        read_more(&mut stream, &mut buf, 8, settings, &mut stop).await?
                    {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => {
                    tracing::info!(%peer, error = %e, "not a Thrift client; closing");
                    return Ok(());
                }
            },
        };
        if buf.is_empty() {
            if let ReadEnd::Close =
                read_more(&mut stream, &mut buf, READ_CHUNK, settings, &mut stop).await?
            {
                return Ok(());
            }
            continue;
        }
        let data = std::mem::take(&mut buf).freeze();
        match codec::decode_message(&data, transport, protocol, settings.max_frame_size) {
            Ok((incoming, used)) => {
                if used < data.len() {
                    // Pipelined bytes of the next message: usually none.
                    buf = BytesMut::from(&data[used..]);
                }
                drop(data);
                // A reply buffer per reply: kept between requests, it would stay with the
                // connection while it idles (the size of its largest reply, up to the frame
                // limit), and allocating one costs less than a microsecond.
                let mut out = Vec::with_capacity(REPLY_BUFFER);
                if answer(incoming, service, transport, protocol, &mut out).await {
                    stream.write_all(&out).await?;
                    settings.metrics.sent(out.len());
                }
            }
            Err(DecodeError::Incomplete { needed }) => {
                let wanted = needed.unwrap_or(READ_CHUNK);
                // Unique again: nothing decoded from `data` is alive, so no copy is made.
                buf = data
                    .try_into_mut()
                    .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
                if let ReadEnd::Close =
                    read_more(&mut stream, &mut buf, wanted, settings, &mut stop).await?
                {
                    if !buf.is_empty() {
                        tracing::info!(%peer, bytes = buf.len(), "connection closed in the middle of a message");
                    }
                    return Ok(());
                }
            }
            Err(e) => {
                // The message's end is unknown, so the stream cannot be resynchronised: say why
                // in a TApplicationException when the peer may still read, then close.
                tracing::info!(%peer, error = %e, "refusing message; closing connection");
                let failure = Error::new(ErrorKind::Protocol, e.to_string());
                let mut out = Vec::new();
                codec::encode_app_exception(
                    &mut out,
                    transport,
                    protocol,
                    b"",
                    0,
                    AppExceptionKind::ProtocolError,
                    &failure.to_string(),
                );
                let _ = stream.write_all(&out).await;
                let _ = stream.shutdown().await;
                return Ok(());
            }
        }
    }
}

/// Runs one decoded message and encodes its answer into `out`. False: nothing to send (a
/// oneway call).
async fn answer(
    incoming: Incoming,
    service: &Service,
    transport: Transport,
    protocol: Protocol,
    out: &mut Vec<u8>,
) -> bool {
    match incoming {
        Incoming::Call {
            seqid,
            call,
            oneway,
        } => {
            let method = call.method();
            let body = match service.call(call).await {
                Ok(body) => body,
                Err(ClientFailure::Thrudoc(ex)) => ReplyBody::Thrown(ex),
                Err(ClientFailure::Application { kind, message }) => {
                    if !oneway {
                        codec::encode_app_exception(
                            out,
                            transport,
                            protocol,
                            method.name().as_bytes(),
                            seqid,
                            kind,
                            &message,
                        );
                    }
                    return !oneway;
                }
            };
            if oneway {
                return false;
            }
            codec::encode_reply(
                out,
                transport,
                protocol,
                &Reply {
                    method,
                    seqid,
                    body,
                },
            );
        }
        Incoming::UnknownMethod { name, seqid } => {
            let message = format!("unknown method `{}`", String::from_utf8_lossy(&name));
            tracing::debug!(%message, "refusing call");
            codec::encode_app_exception(
                out,
                transport,
                protocol,
                &name,
                seqid,
                AppExceptionKind::UnknownMethod,
                &message,
            );
        }
        Incoming::Invalid {
            name,
            seqid,
            kind,
            reason,
        } => {
            tracing::debug!(%reason, "refusing invalid message");
            codec::encode_app_exception(out, transport, protocol, &name, seqid, kind, &reason);
        }
    }
    true
}

/// Reads at least one byte into `buf`, reserving about `wanted` bytes first.
///
/// With an empty buffer (between requests) it waits for readability before reserving memory,
/// stops when the server is stopping, and applies the idle timeout.
async fn read_more(
    stream: &mut Io,
    buf: &mut BytesMut,
    wanted: usize,
    settings: &ConnectionSettings,
    stop: &mut watch::Receiver<bool>,
) -> io::Result<ReadEnd> {
    let stream = match stream {
        Io::Plain(s) => s,
        Io::Tls(s) => return read_tls(s, buf, wanted, settings, stop).await,
    };
    loop {
        let idle = buf.is_empty();
        if idle {
            match while_idle(settings, stop, stream.readable()).await {
                Some(ready) => ready?,
                None => return Ok(ReadEnd::Close),
            }
        } else {
            stream.readable().await?;
        }
        buf.reserve(wanted.clamp(1, settings.max_frame_size.saturating_add(4)));
        let room = buf.capacity() - buf.len();
        let mut read = 0;
        let result = stream.try_io(Interest::READABLE, || {
            read = stream.try_read_buf(buf)?;
            // A read that leaves room has drained the socket: saying "would block" makes tokio
            // forget the readiness, so the wait for the next request goes straight to epoll
            // instead of first costing a read that finds nothing.
            if read > 0 && read < room {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) if read == 0 => return Ok(ReadEnd::Close),
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ if read > 0 => {
                settings.metrics.received(read);
                return Ok(ReadEnd::Data);
            }
            // The readiness was stale: nothing to read after all. An idle connection gives
            // its buffer back before it waits again, so it holds none while it idles.
            _ => {
                if idle {
                    *buf = BytesMut::new();
                }
            }
        }
    }
}

/// [`read_more`] for a TLS connection: rustls keeps its own buffers, so the read waits with
/// memory reserved.
async fn read_tls(
    stream: &mut tokio_rustls::server::TlsStream<TcpStream>,
    buf: &mut BytesMut,
    wanted: usize,
    settings: &ConnectionSettings,
    stop: &mut watch::Receiver<bool>,
) -> io::Result<ReadEnd> {
    // Between requests the server's stop and the idle timeout end the wait; within one, the
    // rest is read.
    let idle = buf.is_empty();
    buf.reserve(wanted.clamp(1, settings.max_frame_size.saturating_add(4)));
    let read = if idle {
        while_idle(settings, stop, stream.read_buf(buf)).await
    } else {
        Some(stream.read_buf(buf).await)
    };
    match read {
        None | Some(Ok(0)) => Ok(ReadEnd::Close),
        Some(Ok(n)) => {
            settings.metrics.received(n);
            Ok(ReadEnd::Data)
        }
        Some(Err(e)) => Err(e),
    }
}
