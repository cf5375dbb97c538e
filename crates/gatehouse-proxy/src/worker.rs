//! Thread per core for the plain-HTTP listener: N worker threads, each with its own
//! single-threaded runtime and its own `SO_REUSEPORT` listener on the gateway's address.
//! The kernel spreads connections over the listeners; a connection's requests are then
//! served start to end on one thread, upstream connections included (each worker keeps
//! its own pool: `upstream::http::Clients`). A multi-threaded runtime moved every call
//! between threads several times (the listener's task, the upstream connection's task,
//! work stealing), and on small machines those wake-ups cost more CPU than the call.
//!
//! Everything else (upstream sessions and streams, the audit writer, SIEM, sweeps) runs
//! where it was started: the main runtime and its own threads.

use std::net::SocketAddr;

use gatehouse_transport::worker::{MAX, enter};
use tokio::sync::watch;

/// Worker threads for `configured`, or one per CPU this process may use.
pub fn count(configured: Option<usize>) -> usize {
    configured
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .clamp(1, MAX)
}

/// Binds `n` listeners sharing `addr` (`SO_REUSEPORT`), before any worker starts, so a
/// taken port fails the start. A port of 0 is chosen once and shared. Call it inside a
/// runtime: tokio's socket type registers each listener until `into_std` hands it over.
pub fn bind(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut out = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        // Only sockets of the same user may share the port (Linux checks the owner).
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        addr = listener.local_addr()?;
        out.push(listener.into_std()?);
    }
    Ok(out)
}

/// Serves the router on one thread per listener until `stop` fires, then lets each drain.
pub async fn serve(
    listeners: Vec<std::net::TcpListener>,
    router: axum::Router,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let workers = listeners.len();
    let (tx, rx) = watch::channel(false);
    let mut threads = Vec::with_capacity(workers);
    for (i, listener) in listeners.into_iter().enumerate() {
        let (router, rx) = (router.clone(), rx.clone());
        let thread = std::thread::Builder::new()
            .name(format!("gatehouse-w{}", i + 1))
            .spawn(move || -> std::io::Result<()> {
                enter(i + 1);
                let served = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|rt| {
                        rt.block_on(async move {
                            let listener = tokio::net::TcpListener::from_std(listener)?;
                            let mut rx = rx;
                            let stopped = async move {
                                let _ = rx.wait_for(|s| *s).await;
                            };
                            crate::serve_until(listener, router, stopped).await
                        })
                    });
                // Said at once: the others keep serving, and the kernel stops sending
                // this listener connections once it is closed.
                if let Err(e) = &served {
                    tracing::error!(worker = i + 1, error = %e, "request worker stopped");
                }
                served
            })?;
        threads.push(thread);
    }
    tracing::info!(workers, "request workers started");
    stop.await;
    let _ = tx.send(true);
    let joined = tokio::task::spawn_blocking(move || {
        let mut first_error = None;
        for t in threads {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => tracing::error!("a request worker panicked"),
            }
        }
        first_error
    })
    .await;
    match joined {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `bind` goes through tokio's socket type, so it runs where `serve` does: in a runtime.
    #[tokio::test]
    async fn every_worker_listens_on_the_one_port_chosen() {
        let listeners = bind("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        assert_eq!(addrs.len(), 3);
        assert!(
            addrs.iter().all(|a| *a == addrs[0] && a.port() != 0),
            "{addrs:?}"
        );
        // A socket without SO_REUSEPORT cannot take the port from them.
        assert!(std::net::TcpListener::bind(addrs[0]).is_err());
    }

    #[test]
    fn worker_counts_stay_within_bounds() {
        assert_eq!(count(Some(3)), 3);
        assert_eq!(count(Some(1000)), MAX);
        assert!((1..=MAX).contains(&count(None)));
    }
}
