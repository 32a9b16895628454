//! The ext_proc gRPC server: one acceptor, and N threads each running a single-threaded tokio
//! runtime that serves the connections handed to it (round robin).
//!
//! Envoy multiplexes every request of a worker onto one HTTP/2 connection, so a connection's
//! streams stay on one thread with no cross-thread wake-ups; measured here, this and answering
//! on the connection's task (see `service`) cut the router's CPU per request about threefold
//! compared with a work-stealing runtime and a task per stream (REFERENCE.md).

use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tonic_health::pb::health_server::{Health, HealthServer};

/// A gRPC service this server can serve: the router's ([`super::processor_server`]), or any
/// `envoy_types` `ExternalProcessorServer` (a benchmark's processor that does nothing).
pub trait GrpcService:
    tower::Service<
        http::Request<tonic::body::Body>,
        Response = http::Response<tonic::body::Body>,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + tonic::server::NamedService
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> GrpcService for S where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Serves until `stop` turns true, then lets in-flight streams finish, for `drain` at most
/// ([`crate::drain`]). Generic over the processor so that a benchmark can measure this same
/// server with a processor that does nothing.
pub async fn serve<P: GrpcService, H: Health>(
    listener: TcpListener,
    grpc: P,
    health: HealthServer<H>,
    threads: usize,
    stop: watch::Receiver<bool>,
    drain: Duration,
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
                .spawn(move || worker(rx, grpc, health, stop, drain))?,
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

fn worker<P: GrpcService, H: Health>(
    rx: mpsc::UnboundedReceiver<std::net::TcpStream>,
    grpc: P,
    health: HealthServer<H>,
    stop: watch::Receiver<bool>,
    drain: Duration,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Registering each connection with this thread's reactor happens here, on this runtime.
        // Writes batched by each connection's writer task (`write_batch`): one `write` for the
        // answers of every stream that was ready in one turn of this thread.
        let incoming = tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(|s| {
            tokio::net::TcpStream::from_std(s).map(super::write_batch::BatchedWrites::tcp)
        });
        let mut stopped = stop.clone();
        let server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .add_service(health)
            .add_service(grpc)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stopped.wait_for(|s| *s).await;
            });
        // Cut short, the server's connection tasks end with this thread's runtime, below.
        if let Some(served) = crate::drain::bounded(server, stop, drain, "ext_proc").await {
            served?;
        }
        Ok::<(), anyhow::Error>(())
    })
}

#[cfg(test)]
mod tests {
    //! The server's answers arrive whole and in order with writes batched (`write_batch`):
    //! many concurrent streams, answers from a few bytes to several HTTP/2 frames, one client
    //! reading straight from the socket and one behind a peer that reads a little at a time.
    use super::*;
    use std::pin::Pin;

    use envoy_types::pb::envoy::service::ext_proc::v3::{
        body_mutation,
        external_processor_client::ExternalProcessorClient,
        external_processor_server::{ExternalProcessor, ExternalProcessorServer},
        processing_request::Request as Phase,
        processing_response, BodyMutation, BodyResponse, CommonResponse, HttpBody,
        ProcessingRequest, ProcessingResponse,
    };
    use futures_util::Stream;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tonic::{Request, Response, Status, Streaming};

    /// Answers each body with the same body, as a body mutation.
    #[derive(Clone, Copy)]
    struct Echo;

    type Answers = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

    #[tonic::async_trait]
    impl ExternalProcessor for Echo {
        type ProcessStream = Answers;

        async fn process(
            &self,
            request: Request<Streaming<ProcessingRequest>>,
        ) -> Result<Response<Answers>, Status> {
            let answers = request.into_inner().map(|m| {
                let body = match m?.request {
                    Some(Phase::RequestBody(b)) => b.body,
                    _ => Vec::new(),
                };
                Ok(ProcessingResponse {
                    response: Some(processing_response::Response::RequestBody(BodyResponse {
                        response: Some(CommonResponse {
                            body_mutation: Some(BodyMutation {
                                mutation: Some(body_mutation::Mutation::Body(body)),
                            }),
                            ..Default::default()
                        }),
                    })),
                    ..Default::default()
                })
            });
            Ok(Response::new(Box::pin(answers)))
        }
    }

    /// Sizes around h2's thresholds (256 B, 1 KiB), the 16 KiB frame and the batch capacity.
    const SIZES: [usize; 9] = [1, 200, 255, 300, 1023, 1100, 5000, 20_000, 70_000];
    const STREAMS: usize = 40;

    fn body(stream: usize, message: usize) -> Vec<u8> {
        let size = SIZES[(stream + message) % SIZES.len()];
        (0..size)
            .map(|i| ((i * 31 + stream * 7 + message) % 251) as u8)
            .collect()
    }

    /// A TCP relay to `server` that reads the server's bytes 1 KiB at a time through a small
    /// receive buffer, pausing now and then: the server's socket fills and its writes wait.
    async fn slow_relay(server: std::net::SocketAddr) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (client, _) = listener.accept().await.expect("accept");
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket.set_recv_buffer_size(4096).expect("rcvbuf");
            let upstream = socket.connect(server).await.expect("connect");
            let (mut cr, mut cw) = client.into_split();
            let (mut ur, mut uw) = upstream.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut cr, &mut uw).await;
                let _ = uw.shutdown().await;
            });
            let mut chunk = [0u8; 1024];
            let mut relayed = 0usize;
            loop {
                let n = match ur.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if cw.write_all(&chunk[..n]).await.is_err() {
                    break;
                }
                relayed += n;
                // A pause every 16 KiB: the server's socket fills meanwhile.
                if relayed % (16 * 1024) < n {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
        });
        addr
    }

    async fn client_checks_every_answer(addr: std::net::SocketAddr) {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            // Envoy's windows (render_envoy.py): flow control lets the server write ahead, so a
            // slow reader fills its socket.
            .initial_connection_window_size(16 << 20)
            .initial_stream_window_size(16 << 20)
            .connect()
            .await
            .expect("connect");
        let client = ExternalProcessorClient::new(channel).max_decoding_message_size(1 << 20);
        let calls = (0..STREAMS).map(|s| {
            let mut client = client.clone();
            async move {
                let requests: Vec<ProcessingRequest> = (0..SIZES.len())
                    .map(|m| ProcessingRequest {
                        request: Some(Phase::RequestBody(HttpBody {
                            body: body(s, m),
                            end_of_stream: m + 1 == SIZES.len(),
                            ..Default::default()
                        })),
                        ..Default::default()
                    })
                    .collect();
                let mut answers = client
                    .process(tokio_stream::iter(requests))
                    .await
                    .expect("stream")
                    .into_inner();
                let mut m = 0;
                while let Some(answer) = answers.message().await.expect("answer") {
                    let got = match answer.response {
                        Some(processing_response::Response::RequestBody(b)) => b
                            .response
                            .and_then(|c| c.body_mutation)
                            .and_then(|b| b.mutation),
                        _ => None,
                    };
                    let Some(body_mutation::Mutation::Body(got)) = got else {
                        panic!("stream {s} answer {m}: not a body answer");
                    };
                    assert!(got == body(s, m), "stream {s} answer {m}: changed");
                    m += 1;
                    if m == SIZES.len() {
                        break;
                    }
                }
                assert_eq!(m, SIZES.len(), "stream {s}: answers missing");
            }
        });
        futures_util::future::join_all(calls).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_arrive_whole_under_load_and_to_slow_readers() {
        // A small send buffer (accepted sockets inherit it; it also stops the kernel from
        // growing it): the server's writes meet a full socket and must wait.
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_send_buffer_size(8192).expect("sndbuf");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let listener = socket.listen(64).expect("listen");
        let addr = listener.local_addr().expect("addr");
        let (_health_reporter, health) = tonic_health::server::health_reporter();
        let (stop_tx, stop) = watch::channel(false);
        let server = tokio::spawn(serve(
            listener,
            ExternalProcessorServer::new(Echo).max_decoding_message_size(1 << 20),
            health,
            2,
            stop,
            Duration::from_secs(5),
        ));
        let relay = slow_relay(addr).await;
        tokio::join!(
            client_checks_every_answer(addr),
            client_checks_every_answer(relay)
        );
        let _ = stop_tx.send(true);
        server.await.expect("join").expect("serve");
    }
}
