//! The gRPC service Envoy's ext_proc filter calls (`envoy.service.ext_proc.v3.ExternalProcessor`,
//! method `Process`), decoding requests as [`super::wire`] (headers as bytes, without copies) and
//! encoding the router's answers ([`super::answer::Answer`]) as [`super::answer_wire`] (the bytes
//! prost writes for Envoy's `ProcessingResponse`, in one pass). What `envoy_types` generates for the service does the same with its own request
//! type and prost's encoder; this differs only in those.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::{http, Body, BoxFuture, StdError};

use super::service::RouterService;
use super::wire::ProcessingRequest;

/// The service name Envoy's `grpc_service` calls.
pub const SERVICE_NAME: &str = "envoy.service.ext_proc.v3.ExternalProcessor";
const PROCESS_PATH: &str = "/envoy.service.ext_proc.v3.ExternalProcessor/Process";

/// The router as a tonic service.
#[derive(Clone)]
pub struct ProcessorServer {
    inner: Arc<RouterService>,
    max_decoding_message_size: Option<usize>,
    max_encoding_message_size: Option<usize>,
}

impl ProcessorServer {
    pub fn new(inner: RouterService) -> ProcessorServer {
        ProcessorServer {
            inner: Arc::new(inner),
            max_decoding_message_size: None,
            max_encoding_message_size: None,
        }
    }

    /// The largest answer sent (a rewritten request body plus its envelope).
    #[must_use]
    pub fn max_encoding_message_size(mut self, limit: usize) -> ProcessorServer {
        self.max_encoding_message_size = Some(limit);
        self
    }

    /// The largest request message accepted (a request body up to `--max-request-body-size`
    /// plus its envelope).
    #[must_use]
    pub fn max_decoding_message_size(mut self, limit: usize) -> ProcessorServer {
        self.max_decoding_message_size = Some(limit);
        self
    }
}

/// `Process`, the one method.
struct Process(Arc<RouterService>);

impl tonic::server::StreamingService<ProcessingRequest> for Process {
    type Response = super::answer::Answer;
    type ResponseStream = super::service::ResponseStream;
    type Future = BoxFuture<tonic::Response<Self::ResponseStream>, tonic::Status>;

    fn call(
        &mut self,
        request: tonic::Request<tonic::Streaming<ProcessingRequest>>,
    ) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { Ok(inner.process(request)) })
    }
}

impl<B> tonic::codegen::Service<http::Request<B>> for ProcessorServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != PROCESS_PATH {
            return Box::pin(async move { Ok(unimplemented()) });
        }
        let method = Process(self.inner.clone());
        let (max_decoding, max_encoding) = (
            self.max_decoding_message_size,
            self.max_encoding_message_size,
        );
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(super::answer_wire::AnswerCodec)
                .apply_max_message_size_config(max_decoding, max_encoding);
            Ok(grpc.streaming(method, req).await)
        })
    }
}

/// gRPC's answer to a method this service does not have.
fn unimplemented() -> http::Response<tonic::body::Body> {
    let mut response = http::Response::new(tonic::body::Body::default());
    let headers = response.headers_mut();
    headers.insert(
        tonic::Status::GRPC_STATUS,
        (tonic::Code::Unimplemented as i32).into(),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        tonic::metadata::GRPC_CONTENT_TYPE,
    );
    response
}

impl tonic::server::NamedService for ProcessorServer {
    const NAME: &'static str = SERVICE_NAME;
}
