//! Native gRPC: passed through to the inner service unchanged.
//!
//! The only translation is of failures the inner service reports as service errors (rather
//! than as a gRPC status): they become a trailers-only gRPC response, so the caller always
//! gets a status.

use bytes::Bytes;
use http::{Request, Response};
use tonic::Status;
use tower::{Service, ServiceExt};

use crate::BoxError;

/// Calls the inner service with the request as is.
pub(crate) async fn serve<S, B, ReqB>(
    service: S,
    request: Request<ReqB>,
) -> Response<tonic::body::Body>
where
    S: Service<Request<tonic::body::Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
{
    match service.oneshot(request.map(tonic::body::Body::new)).await {
        Ok(response) => response.map(tonic::body::Body::new),
        Err(err) => Status::from_error(err.into()).into_http(),
    }
}
