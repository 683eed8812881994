//! [`Handlers`]: the in-process backend of unary calls, a table from gRPC path to the typed
//! handler.
//!
//! tonic's generated servers only take `http::Request`s: calling through them means framing the
//! message, routing the path and parsing the status back out of trailers, all inside one
//! process. A table entry instead decodes the request bytes into the handler's own prost type,
//! awaits the handler and encodes its answer: one decode and one encode per call, nothing else.
//! Streaming methods are not in the table; they go through the tonic services as before.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::HeaderMap;
use tonic::Status;
use tonic::metadata::MetadataMap;

use super::Reply;

/// The type-erased form of one unary handler.
pub(crate) type UnaryHandler = Arc<
    dyn Fn(HeaderMap, tonic::Extensions, Bytes) -> BoxFuture<'static, Result<Reply, Status>>
        + Send
        + Sync,
>;

/// The in-process handler of one method, as a [`Call`](super::Call) carries it: looked up once
/// when the gateway is built, not by path on every call.
#[derive(Clone)]
pub(crate) struct InProcess(pub(crate) UnaryHandler);

impl fmt::Debug for InProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InProcess")
    }
}

/// Authenticates the caller of an in-process call from its request metadata, before the body
/// is read; what it returns (the caller, say) reaches the handler in the request's extensions.
pub type Authenticator =
    Arc<dyn Fn(&HeaderMap) -> BoxFuture<'static, Result<tonic::Extensions, Status>> + Send + Sync>;

/// Unary handlers called in-process, by gRPC path (`/pkg.Service/Method`).
///
/// ```
/// use switchyard_gateway::Handlers;
///
/// let mut handlers = Handlers::new();
/// handlers.unary("/pkg.v1.Echo/Say", |request: tonic::Request<String>| async move {
///     Ok(tonic::Response::new(request.into_inner()))
/// });
/// assert!(handlers.contains("/pkg.v1.Echo/Say"));
/// ```
#[derive(Default, Clone)]
pub struct Handlers {
    unary: HashMap<String, UnaryHandler>,
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut paths: Vec<&String> = self.unary.keys().collect();
        paths.sort();
        f.debug_struct("Handlers").field("unary", &paths).finish()
    }
}

impl Handlers {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for the unary method at `path`, replacing any earlier one.
    ///
    /// A request that does not decode as `Req` is answered INVALID_ARGUMENT, naming the type.
    pub fn unary<Req, Resp, F, Fut>(&mut self, path: impl Into<String>, handler: F) -> &mut Self
    where
        Req: prost::Message + Default + 'static,
        Resp: prost::Message + 'static,
        F: Fn(tonic::Request<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: UnaryHandler = Arc::new(
            move |metadata: HeaderMap, extensions: tonic::Extensions, message: Bytes| {
                let request = Req::decode(message).map(|message| {
                    tonic::Request::from_parts(
                        MetadataMap::from_headers(metadata),
                        extensions,
                        message,
                    )
                });
                let handler = Arc::clone(&handler);
                Box::pin(async move {
                    let request = request.map_err(|e| {
                        Status::invalid_argument(format!(
                            "the request is not a valid {} message: {e}",
                            std::any::type_name::<Req>()
                                .rsplit("::")
                                .next()
                                .unwrap_or_default()
                        ))
                    })?;
                    let (metadata, message, _extensions) = handler(request).await?.into_parts();
                    Ok(Reply {
                        headers: metadata.into_headers(),
                        message: Bytes::from(message.encode_to_vec()),
                        trailers: HeaderMap::new(),
                    })
                })
            },
        );
        self.unary.insert(path.into(), erased);
        self
    }

    /// Whether a unary handler is registered for `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.unary.contains_key(path)
    }

    /// The registered paths, in no particular order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.unary.keys().map(String::as_str)
    }

    pub(crate) fn unary_handler(&self, path: &str) -> Option<InProcess> {
        self.unary.get(path).cloned().map(InProcess)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_the_typed_handler_with_metadata() {
        let mut handlers = Handlers::new();
        handlers.unary("/a.B/C", |request: tonic::Request<String>| async move {
            let who = request
                .metadata()
                .get("x-who")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nobody")
                .to_owned();
            let mut response = tonic::Response::new(format!("{who}:{}", request.into_inner()));
            response
                .metadata_mut()
                .insert("x-done", "1".parse().unwrap_or_else(|_| unreachable!()));
            Ok(response)
        });
        let Some(handler) = handlers.unary_handler("/a.B/C") else {
            panic!("handler missing");
        };
        let mut metadata = HeaderMap::new();
        metadata.insert("x-who", http::HeaderValue::from_static("me"));
        let request = prost::Message::encode_to_vec(&"hi".to_owned());
        let reply = (handler.0)(metadata, tonic::Extensions::default(), Bytes::from(request)).await;
        let reply = reply.unwrap_or_else(|s| panic!("{s:?}"));
        let answer: String = prost::Message::decode(reply.message).unwrap_or_default();
        assert_eq!(answer, "me:hi");
        assert!(reply.headers.contains_key("x-done"));
    }

    #[tokio::test]
    async fn undecodable_request_is_invalid_argument() {
        let mut handlers = Handlers::new();
        handlers.unary("/a.B/C", |request: tonic::Request<String>| async move {
            Ok(tonic::Response::new(request.into_inner()))
        });
        let Some(handler) = handlers.unary_handler("/a.B/C") else {
            panic!("handler missing");
        };
        let got = (handler.0)(
            HeaderMap::new(),
            tonic::Extensions::default(),
            Bytes::from_static(b"\x0a\x05ab"),
        )
        .await;
        assert_eq!(
            got.err().map(|s| s.code()),
            Some(tonic::Code::InvalidArgument)
        );
    }
}
