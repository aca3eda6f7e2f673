//! The connections: hyper's HTTP/1 server over tokio's TCP, each request handed to the axum
//! router, and a graceful stop (no new connections; open ones finish their request, then close).
//! axum's own `serve` would do this through hyper-util, whose dependencies change the features
//! of crates candle shares and so rebuild all of it; this is the part of it the server needs.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower_service::Service;

/// A tokio stream as hyper's IO.
struct Io<T>(T);

impl<T: AsyncRead + Unpin> hyper::rt::Read for Io<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: tokio's ReadBuf over the cursor's unfilled part writes only initialised bytes
        // into it and reports how many; nothing else is read from or written to the slice.
        let filled = unsafe {
            let mut target = tokio::io::ReadBuf::uninit(buf.as_mut());
            match Pin::new(&mut self.0).poll_read(cx, &mut target) {
                Poll::Ready(Ok(())) => target.filled().len(),
                other => return other,
            }
        };
        // SAFETY: the read above initialised exactly `filled` bytes at the cursor.
        unsafe { buf.advance(filled) };
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for Io<T> {
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

/// Serves `app` on `listener` until `stop` turns true, then lets open connections finish
/// (each closes after its current request) for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) -> io::Result<()> {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            // Out of file descriptors and the like: the next accept may work.
            Err(err) => {
                tracing::warn!(%err, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = app.clone();
        let mut conn_stop = stop.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let mut router = router.clone();
                router.call(request)
            });
            // Upgrades: the event WebSocket takes the connection over after its 101.
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(Io(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => Some(ended),
                _ = conn_stop.wait_for(|s| *s) => None,
            };
            let ended = match ended {
                Some(ended) => ended,
                None => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(err) = ended {
                tracing::debug!(%err, "connection ended with an error");
            }
        });
        // Finished connections are reaped as we go, so the set holds only open ones.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("open connections did not finish in time; closing them");
        connections.abort_all();
    }
    Ok(())
}
