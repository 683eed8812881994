//! The REST ceiling: a raw hyper 1.x server (HTTP/1.1 and h2c, as Switchyard's port) that
//! reads each request's body and answers the fixed ReactivateUser JSON. Whatever Switchyard
//! does beyond this is the cost of transcoding, dispatch and the handler.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    // Read the body as a real handler must; a failed read still gets the answer.
    let _ = request.into_body().collect().await;
    let mut response =
        hyper::Response::new(Full::new(Bytes::from_static(switchyard_bench::REST_ANSWER)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(switchyard_bench::listen_addr()?).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}
