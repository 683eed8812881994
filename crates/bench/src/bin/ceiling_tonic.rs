//! The gRPC ceiling: a raw tonic server whose one service answers every method of
//! `zitadel.management.v1.ManagementService` with the fixed ReactivateUser response, decoding
//! the request as generated code does. Switchyard's gRPC path adds the gateway's protocol
//! detection, authentication, the domain and the store on top of this.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use switchyard_proto::zitadel::management::v1::{ReactivateUserRequest, ReactivateUserResponse};
use tonic::server::{NamedService, UnaryService};

/// The handler: the fixed answer, whatever the request.
#[derive(Clone, Copy)]
struct Fixed;

impl UnaryService<ReactivateUserRequest> for Fixed {
    type Response = ReactivateUserResponse;
    type Future = std::future::Ready<Result<tonic::Response<Self::Response>, tonic::Status>>;

    fn call(&mut self, _request: tonic::Request<ReactivateUserRequest>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(switchyard_bench::grpc_answer())))
    }
}

/// The service, as `tonic-build` would generate it for one method, but for every path.
#[derive(Clone, Copy)]
struct Service;

impl NamedService for Service {
    const NAME: &'static str = "zitadel.management.v1.ManagementService";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for Service {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            let codec =
                tonic_prost::ProstCodec::<ReactivateUserResponse, ReactivateUserRequest>::default();
            Ok(tonic::server::Grpc::new(codec).unary(Fixed, request).await)
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tonic::transport::Server::builder()
        .add_service(Service)
        .serve(switchyard_bench::listen_addr()?)
        .await?;
    Ok(())
}
