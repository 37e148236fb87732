//! The operator's port (`METRICS_BIND`:`METRICS_PORT`): `GET /metrics` (Prometheus text
//! format) and `GET /` (the status page). A small HTTP/1.1 responder, enough for Prometheus and
//! a browser: one request per connection, a bounded head, `Connection: close`.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::page;
use crate::service::Service;

/// The most bytes of a request head read.
const MAX_HEAD: usize = 8 * 1024;

/// How long a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests served at once; more wait for the listener.
const AT_ONCE: usize = 32;

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, service: Arc<Service>) {
    let permits = Arc::new(Semaphore::new(AT_ONCE));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "metrics port: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = service.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &service).await {
                tracing::debug!(%peer, error = %e, "metrics port: request failed");
            }
            drop(permit);
        });
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Metrics,
    Page,
    NotFound(String),
    /// Not GET or HEAD.
    Method(String),
    Bad,
}

/// The request line of `head`: its method and path (a query string is ignored).
fn parse(head: &[u8]) -> (Request, bool) {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return (Request::Bad, false);
    };
    if !version.starts_with("HTTP/1.") {
        return (Request::Bad, false);
    }
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return (Request::Method(method.to_string()), false);
    }
    let path = target.split('?').next().unwrap_or_default();
    let request = match path {
        "/metrics" => Request::Metrics,
        "/" | "/index.html" => Request::Page,
        other => Request::NotFound(other.to_string()),
    };
    (request, head_only)
}

async fn answer(mut stream: TcpStream, service: &Service) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let read = async {
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    if tokio::time::timeout(HEAD_TIMEOUT, read).await.is_err() {
        return Ok(());
    }
    let (request, head_only) = parse(&head);
    let (status, kind, body) = match request {
        Request::Metrics => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            service.metrics().encode(),
        ),
        Request::Page => (
            "200 OK",
            "text/html; charset=utf-8",
            page::render(service.cluster().as_ref(), service.uptime()),
        ),
        Request::NotFound(path) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            format!("no page {path}: try / (status) or /metrics\n"),
        ),
        Request::Method(m) => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            format!("{m} is not served here: only GET and HEAD\n"),
        ),
        Request::Bad => (
            "400 Bad Request",
            "text/plain; charset=utf-8",
            "not an HTTP/1 request\n".to_string(),
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&out).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_method_and_path() {
        let p = |s: &str| parse(s.as_bytes());
        assert_eq!(
            p("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            (Request::Metrics, false)
        );
        assert_eq!(p("GET /?x=1 HTTP/1.0\r\n\r\n"), (Request::Page, false));
        assert_eq!(p("HEAD / HTTP/1.1\r\n\r\n"), (Request::Page, true));
        assert_eq!(
            p("GET /nope HTTP/1.1\r\n\r\n"),
            (Request::NotFound("/nope".into()), false)
        );
        assert_eq!(
            p("POST /metrics HTTP/1.1\r\n\r\n"),
            (Request::Method("POST".into()), false)
        );
        assert_eq!(p("\x00\x00\x00\x10"), (Request::Bad, false));
        assert_eq!(p("GET / SPDY/3\r\n\r\n"), (Request::Bad, false));
    }
}
