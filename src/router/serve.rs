//! The ext_proc gRPC server: one acceptor, and N threads each running a single-threaded tokio
//! runtime that serves the connections handed to it (round robin).
//!
//! Envoy multiplexes every request of a worker onto one HTTP/2 connection, so a connection's
//! streams stay on one thread with no cross-thread wake-ups; measured here, this and answering
//! on the connection's task (see `stream`) cut the router's CPU per request about threefold
//! compared with a work-stealing runtime and a task per stream (REFERENCE.md).

use std::time::Duration;

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use futures_util::{FutureExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tonic_health::pb::health_server::{Health, HealthServer};

/// Serves until `stop` turns true, then lets in-flight streams finish. Generic over the
/// processor so that a benchmark can measure this same server with a processor that does nothing.
pub async fn serve<P: ExternalProcessor, H: Health>(
    listener: TcpListener,
    grpc: ExternalProcessorServer<P>,
    health: HealthServer<H>,
    threads: usize,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let threads = threads.max(1);
    let mut senders = Vec::with_capacity(threads);
    let mut workers = Vec::with_capacity(threads);
    for i in 0..threads {
        let (tx, rx) = mpsc::unbounded_channel::<std::net::TcpStream>();
        senders.push(tx);
        let grpc = grpc.clone();
        let health = health.clone();
        let stop = stop.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("ext-proc-{i}"))
                .spawn(move || worker(rx, grpc, health, stop))?,
        );
    }
    let mut stop_accepting = stop.clone();
    let mut next = 0usize;
    loop {
        tokio::select! {
            _ = stop_accepting.wait_for(|s| *s).map(|_| ()) => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!(error = %e, "ext_proc accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                match stream.into_std() {
                    Ok(s) => {
                        let _ = senders[next % threads].send(s);
                        next = next.wrapping_add(1);
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot hand over an ext_proc connection"),
                }
            }
        }
    }
    drop(senders);
    tokio::task::spawn_blocking(move || {
        for w in workers {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "ext_proc worker failed"),
                Err(_) => tracing::error!("ext_proc worker panicked"),
            }
        }
    })
    .await?;
    Ok(())
}

fn worker<P: ExternalProcessor, H: Health>(
    rx: mpsc::UnboundedReceiver<std::net::TcpStream>,
    grpc: ExternalProcessorServer<P>,
    health: HealthServer<H>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Registering each connection with this thread's reactor happens here, on this runtime.
        let incoming = tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
            .map(tokio::net::TcpStream::from_std);
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .add_service(health)
            .add_service(grpc)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await?;
        Ok::<(), anyhow::Error>(())
    })
}
