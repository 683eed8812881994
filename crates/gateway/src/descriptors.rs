//! Where the gateway's descriptors come from: a FileDescriptorSet file, `.proto` files
//! compiled at start-up (protox), or an upstream's server reflection (v1, then v1alpha).
//!
//! Every source ends as a [`DescriptorPool`] decoded from the raw bytes, never through
//! `prost_types`, so that unknown fields and extension options such as `google.api.http`
//! survive. Building routes from the pool is `crate::gateway`'s job.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::Path;

use bytes::Bytes;
use http::HeaderMap;
use prost::Message as _;
use prost_reflect::DescriptorPool;
use tonic::Status;

use crate::call::upstream;
use crate::upstream::Upstream;

/// Why descriptors could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DescriptorError {
    /// The descriptor set file could not be read.
    #[error("cannot read descriptor set {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid, self-contained FileDescriptorSet.
    #[error("invalid descriptor set: {0}")]
    Decode(#[from] prost_reflect::DescriptorError),
    /// `.proto` files did not compile.
    #[error("cannot compile .proto files: {0}")]
    Compile(String),
    /// Server reflection failed.
    #[error("server reflection failed: {0}")]
    Reflection(String),
}

/// Decodes a FileDescriptorSet (as `protoc --include_imports --descriptor_set_out` or
/// `buf build -o` write it).
///
/// # Errors
///
/// [`DescriptorError::Decode`] when a file is malformed or an import is missing.
pub fn pool_from_descriptor_set(bytes: &[u8]) -> Result<DescriptorPool, DescriptorError> {
    Ok(DescriptorPool::decode(bytes)?)
}

/// Reads and decodes a FileDescriptorSet file.
///
/// # Errors
///
/// [`DescriptorError::Read`] or [`DescriptorError::Decode`].
pub fn pool_from_descriptor_set_file(path: &Path) -> Result<DescriptorPool, DescriptorError> {
    let bytes = std::fs::read(path).map_err(|source| DescriptorError::Read {
        path: path.display().to_string(),
        source,
    })?;
    pool_from_descriptor_set(&bytes)
}

/// Compiles `files` (relative to one of `include_paths`, or paths inside one) with protox.
///
/// # Errors
///
/// [`DescriptorError::Compile`] with protox's message (file, line, column).
pub fn pool_from_protos(
    files: &[impl AsRef<Path>],
    include_paths: &[impl AsRef<Path>],
) -> Result<DescriptorPool, DescriptorError> {
    let compile = || -> Result<Vec<u8>, protox::Error> {
        let mut compiler = protox::Compiler::new(include_paths)?;
        compiler.include_imports(true);
        compiler.include_source_info(true);
        for file in files {
            compiler.open_file(file)?;
        }
        Ok(compiler.encode_file_descriptor_set())
    };
    let bytes = compile().map_err(|e| DescriptorError::Compile(format!("{e:?}")))?;
    pool_from_descriptor_set(&bytes)
}

/// The reflection services, newest first.
const REFLECTION_PATHS: [&str; 2] = [
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Fetches every service's files (and their imports) from the upstream's server reflection,
/// trying v1 and then v1alpha. The reflection services themselves are left out.
///
/// # Errors
///
/// [`DescriptorError::Reflection`] when neither version answers or a file is missing.
pub async fn pool_from_reflection(upstream: &Upstream) -> Result<DescriptorPool, DescriptorError> {
    let mut last = String::new();
    for path in REFLECTION_PATHS {
        match fetch_files(upstream, path).await {
            Ok(files) => {
                let set = FileDescriptorSetRaw {
                    file: files.into_values().collect(),
                };
                return pool_from_descriptor_set(&set.encode_to_vec());
            }
            Err(status) => last = format!("{path}: {}", status.message()),
        }
    }
    Err(DescriptorError::Reflection(last))
}

async fn fetch_files(upstream: &Upstream, path: &str) -> Result<BTreeMap<String, Vec<u8>>, Status> {
    let listed = ask(upstream, path, Request::ListServices(String::new())).await?;
    let services = match listed {
        Answer::ListServicesResponse(list) => list.service,
        Answer::ErrorResponse(e) => return Err(Status::unknown(e.error_message)),
        Answer::FileDescriptorResponse(_) => {
            return Err(Status::internal("unexpected reflection answer"));
        }
    };
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut wanted: VecDeque<Request> = services
        .into_iter()
        .filter(|s| !s.name.starts_with("grpc.reflection."))
        .map(|s| Request::FileContainingSymbol(s.name))
        .collect();
    let mut asked: HashSet<String> = HashSet::new();
    while let Some(request) = wanted.pop_front() {
        let answer = ask(upstream, path, request).await?;
        let raw_files = match answer {
            Answer::FileDescriptorResponse(r) => r.file_descriptor_proto,
            Answer::ErrorResponse(e) => return Err(Status::not_found(e.error_message)),
            Answer::ListServicesResponse(_) => {
                return Err(Status::internal("unexpected reflection answer"));
            }
        };
        for raw in raw_files {
            let head = FileHeader::decode(raw.as_slice())
                .map_err(|e| Status::internal(format!("bad FileDescriptorProto: {e}")))?;
            for dep in head.dependency {
                if !files.contains_key(&dep) && asked.insert(dep.clone()) {
                    wanted.push_back(Request::FileByFilename(dep));
                }
            }
            asked.insert(head.name.clone());
            files.insert(head.name, raw);
        }
    }
    Ok(files)
}

async fn ask(upstream: &Upstream, path: &str, request: Request) -> Result<Answer, Status> {
    let message = ReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let reply = upstream::unary(
        upstream.clone(),
        path,
        Some(std::time::Duration::from_secs(10)),
        HeaderMap::new(),
        Bytes::from(message.encode_to_vec()),
        64 * 1024 * 1024,
    )
    .await?;
    ReflectionResponse::decode(reply.message)
        .map_err(|e| Status::internal(format!("bad reflection answer: {e}")))?
        .message_response
        .ok_or_else(|| Status::internal("empty reflection answer"))
}

/// `grpc.reflection.v1[alpha].ServerReflectionRequest` (both versions share the wire format).
#[derive(Clone, PartialEq, prost::Message)]
struct ReflectionRequest {
    #[prost(string, tag = "1")]
    host: String,
    #[prost(oneof = "Request", tags = "3, 4, 7")]
    message_request: Option<Request>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Request {
    #[prost(string, tag = "3")]
    FileByFilename(String),
    #[prost(string, tag = "4")]
    FileContainingSymbol(String),
    #[prost(string, tag = "7")]
    ListServices(String),
}

/// `ServerReflectionResponse`.
#[derive(Clone, PartialEq, prost::Message)]
struct ReflectionResponse {
    #[prost(oneof = "Answer", tags = "4, 6, 7")]
    message_response: Option<Answer>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
#[allow(clippy::enum_variant_names)] // The spec's own names.
enum Answer {
    #[prost(message, tag = "4")]
    FileDescriptorResponse(FileDescriptorResponse),
    #[prost(message, tag = "6")]
    ListServicesResponse(ListServiceResponse),
    #[prost(message, tag = "7")]
    ErrorResponse(ErrorResponse),
}

#[derive(Clone, PartialEq, prost::Message)]
struct FileDescriptorResponse {
    #[prost(bytes = "vec", repeated, tag = "1")]
    file_descriptor_proto: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ListServiceResponse {
    #[prost(message, repeated, tag = "1")]
    service: Vec<ServiceResponse>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ServiceResponse {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ErrorResponse {
    #[prost(int32, tag = "1")]
    error_code: i32,
    #[prost(string, tag = "2")]
    error_message: String,
}

/// The name and imports of a `FileDescriptorProto`; everything else stays in the raw bytes.
#[derive(Clone, PartialEq, prost::Message)]
struct FileHeader {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, repeated, tag = "3")]
    dependency: Vec<String>,
}

/// `FileDescriptorSet` over raw file bytes.
#[derive(Clone, PartialEq, prost::Message)]
struct FileDescriptorSetRaw {
    #[prost(bytes = "vec", repeated, tag = "1")]
    file: Vec<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_set_keeps_http_options() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let pool = pool_from_protos(
            &["example/v1/echo.proto"],
            &[format!("{dir}/testdata"), format!("{dir}/../../proto")],
        );
        let Ok(pool) = pool else {
            panic!("compile: {pool:?}");
        };
        let set = pool.encode_to_vec();
        let again = pool_from_descriptor_set(&set);
        let routes = again
            .ok()
            .and_then(|p| switchyard_transcode::RouteTableBuilder::new(p).build().ok())
            .map(|t| t.routes().len());
        assert_eq!(routes, Some(4));
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(
            pool_from_descriptor_set(b"\x0a\x03abc"),
            Err(DescriptorError::Decode(_))
        ));
        assert!(matches!(
            pool_from_descriptor_set_file(Path::new("/nonexistent/x.pb")),
            Err(DescriptorError::Read { .. })
        ));
        let none: [&str; 0] = [];
        assert!(matches!(
            pool_from_protos(&["missing.proto"], &none),
            Err(DescriptorError::Compile(_))
        ));
    }
}
