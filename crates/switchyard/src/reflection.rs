//! gRPC server reflection (`grpc.reflection.v1` and `v1alpha`) over every service `serve`
//! answers: ZITADEL's, `grpc.health.v1.Health` and reflection itself.
//!
//! Why not tonic-reflection's server: in 0.14 it ends the whole stream with a status as soon
//! as one request names an unknown symbol or file (`server/v1.rs`: on `Err(status)` it sends the
//! status and returns), whereas grpc-go — the reference grpcurl and `buf curl` are written
//! against — answers that request with an in-stream `error_response` and keeps serving the
//! stream. So this keeps tonic-reflection's generated messages and server trait, and answers
//! from a prost-reflect pool: each file is sent with the files it imports, once per stream, as
//! grpc-go does.

use std::collections::HashSet;
use std::pin::Pin;

use prost::Message as _;
use prost_reflect::{DescriptorPool, FileDescriptor};
use tokio_stream::{Stream, StreamExt as _};

/// The descriptors reflection describes: Switchyard's own set plus the health and reflection
/// services' (which tonic-health and tonic-reflection ship).
pub(crate) fn pool() -> anyhow::Result<DescriptorPool> {
    let mut pool = switchyard_proto::descriptor_pool().clone();
    for set in [
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ] {
        pool.decode_file_descriptor_set(set)?;
    }
    Ok(pool)
}

/// One reflection request, whichever version asked it.
enum Ask {
    File(String),
    Symbol(String),
    Extension(String, i32),
    AllExtensions(String),
    ListServices,
    Invalid,
}

/// The answer to one [`Ask`].
enum Answer {
    /// Encoded `FileDescriptorProto`s.
    Files(Vec<Vec<u8>>),
    Extensions(String, Vec<i32>),
    Services(Vec<String>),
    Error(tonic::Code, String),
}

/// The reflection state of one stream: the pool and the files already sent on it.
struct Session {
    pool: DescriptorPool,
    sent: HashSet<String>,
}

impl Session {
    fn answer(&mut self, ask: Ask) -> Answer {
        let pool = self.pool.clone();
        match ask {
            Ask::ListServices => {
                Answer::Services(pool.services().map(|s| s.full_name().to_owned()).collect())
            }
            Ask::File(name) => match pool.get_file_by_name(&name) {
                Some(file) => self.files(&file),
                None => Answer::Error(tonic::Code::NotFound, format!("file '{name}' not found")),
            },
            Ask::Symbol(symbol) => match file_of_symbol(&pool, &symbol) {
                Some(file) => self.files(&file),
                None => Answer::Error(
                    tonic::Code::NotFound,
                    format!("symbol '{symbol}' not found"),
                ),
            },
            Ask::Extension(message, number) => {
                match pool
                    .get_message_by_name(&message)
                    .and_then(|m| m.get_extension(u32::try_from(number).ok()?))
                {
                    Some(ext) => self.files(&ext.parent_file()),
                    None => Answer::Error(
                        tonic::Code::NotFound,
                        format!("no extension {number} of '{message}'"),
                    ),
                }
            }
            Ask::AllExtensions(message) => match pool.get_message_by_name(&message) {
                Some(m) => Answer::Extensions(
                    message,
                    m.extensions()
                        .filter_map(|e| i32::try_from(e.number()).ok())
                        .collect(),
                ),
                None => Answer::Error(
                    tonic::Code::NotFound,
                    format!("message '{message}' not found"),
                ),
            },
            Ask::Invalid => Answer::Error(
                tonic::Code::InvalidArgument,
                "the request names no message_request".into(),
            ),
        }
    }

    /// `file` and what it imports, transitively, leaving out what this stream was already sent.
    fn files(&mut self, file: &FileDescriptor) -> Answer {
        let mut out = Vec::new();
        let mut todo = vec![file.clone()];
        while let Some(next) = todo.pop() {
            if !self.sent.insert(next.name().to_owned()) {
                continue;
            }
            out.push(next.file_descriptor_proto().encode_to_vec());
            todo.extend(next.dependencies());
        }
        // A file asked again is sent again (the client asked), without its known imports.
        if out.is_empty() {
            out.push(file.file_descriptor_proto().encode_to_vec());
        }
        Answer::Files(out)
    }
}

/// The file that defines `symbol`: a service, method, message, field, enum, enum value or
/// extension, by full name.
fn file_of_symbol(pool: &DescriptorPool, symbol: &str) -> Option<FileDescriptor> {
    if let Some(s) = pool.get_service_by_name(symbol) {
        return Some(s.parent_file());
    }
    if let Some(m) = pool.get_message_by_name(symbol) {
        return Some(m.parent_file());
    }
    if let Some(e) = pool.get_enum_by_name(symbol) {
        return Some(e.parent_file());
    }
    if let Some(e) = pool.get_extension_by_name(symbol) {
        return Some(e.parent_file());
    }
    let (parent, member) = symbol.rsplit_once('.')?;
    if let Some(s) = pool.get_service_by_name(parent) {
        return s
            .methods()
            .any(|m| m.name() == member)
            .then(|| s.parent_file());
    }
    if let Some(m) = pool.get_message_by_name(parent) {
        return m.get_field_by_name(member).map(|_| m.parent_file());
    }
    pool.get_enum_by_name(parent)
        .and_then(|e| e.get_value_by_name(member).map(|_| e.parent_file()))
}

/// The server for one reflection version: the conversions between its generated messages and
/// [`Ask`] / [`Answer`] (v1 and v1alpha have the same shapes in different packages).
macro_rules! reflection_version {
    ($module:ident, $pb:path) => {
        pub(crate) mod $module {
            use pb::server_reflection_request::MessageRequest;
            use pb::server_reflection_response::MessageResponse;
            use $pb as pb;

            use super::*;

            /// Reflection answered from a descriptor pool, errors in-stream.
            #[derive(Debug, Clone)]
            pub(crate) struct Reflection {
                pool: DescriptorPool,
            }

            /// The tonic service for `pool`.
            pub(crate) fn server(
                pool: DescriptorPool,
            ) -> pb::server_reflection_server::ServerReflectionServer<Reflection> {
                pb::server_reflection_server::ServerReflectionServer::new(Reflection { pool })
            }

            fn ask(request: &pb::ServerReflectionRequest) -> Ask {
                match request.message_request.clone() {
                    Some(MessageRequest::FileByFilename(name)) => Ask::File(name),
                    Some(MessageRequest::FileContainingSymbol(symbol)) => Ask::Symbol(symbol),
                    Some(MessageRequest::FileContainingExtension(ext)) => {
                        Ask::Extension(ext.containing_type, ext.extension_number)
                    }
                    Some(MessageRequest::AllExtensionNumbersOfType(message)) => {
                        Ask::AllExtensions(message)
                    }
                    Some(MessageRequest::ListServices(_)) => Ask::ListServices,
                    None => Ask::Invalid,
                }
            }

            fn respond(
                request: pb::ServerReflectionRequest,
                answer: Answer,
            ) -> pb::ServerReflectionResponse {
                let message = match answer {
                    Answer::Files(files) => {
                        MessageResponse::FileDescriptorResponse(pb::FileDescriptorResponse {
                            file_descriptor_proto: files,
                        })
                    }
                    Answer::Extensions(base_type_name, extension_number) => {
                        MessageResponse::AllExtensionNumbersResponse(pb::ExtensionNumberResponse {
                            base_type_name,
                            extension_number,
                        })
                    }
                    Answer::Services(names) => {
                        MessageResponse::ListServicesResponse(pb::ListServiceResponse {
                            service: names
                                .into_iter()
                                .map(|name| pb::ServiceResponse { name })
                                .collect(),
                        })
                    }
                    Answer::Error(code, error_message) => {
                        MessageResponse::ErrorResponse(pb::ErrorResponse {
                            error_code: code as i32,
                            error_message,
                        })
                    }
                };
                pb::ServerReflectionResponse {
                    valid_host: request.host.clone(),
                    original_request: Some(request),
                    message_response: Some(message),
                }
            }

            #[tonic::async_trait]
            impl pb::server_reflection_server::ServerReflection for Reflection {
                type ServerReflectionInfoStream = Pin<
                    Box<
                        dyn Stream<Item = Result<pb::ServerReflectionResponse, tonic::Status>>
                            + Send,
                    >,
                >;

                async fn server_reflection_info(
                    &self,
                    request: tonic::Request<tonic::Streaming<pb::ServerReflectionRequest>>,
                ) -> Result<tonic::Response<Self::ServerReflectionInfoStream>, tonic::Status>
                {
                    let mut session = Session {
                        pool: self.pool.clone(),
                        sent: HashSet::new(),
                    };
                    let answers = request.into_inner().map(move |item| {
                        item.map(|request| {
                            let answer = session.answer(ask(&request));
                            respond(request, answer)
                        })
                    });
                    Ok(tonic::Response::new(Box::pin(answers)))
                }
            }
        }
    };
}

reflection_version!(v1, tonic_reflection::pb::v1);
reflection_version!(v1alpha, tonic_reflection::pb::v1alpha);

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            pool: pool().expect("pool"),
            sent: HashSet::new(),
        }
    }

    #[test]
    fn lists_health_and_reflection_beside_zitadel() {
        let Answer::Services(names) = session().answer(Ask::ListServices) else {
            panic!("not a service list");
        };
        for want in [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "zitadel.management.v1.ManagementService",
            "zitadel.user.v2.UserService",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
    }

    #[test]
    fn symbols_resolve_with_their_imports_once_per_stream() {
        let mut session = session();
        let Answer::Files(first) = session.answer(Ask::Symbol(
            "zitadel.management.v1.ManagementService".into(),
        )) else {
            panic!("no files");
        };
        assert!(first.len() > 1, "the service's file comes with its imports");
        let Answer::Files(again) = session.answer(Ask::Symbol(
            "zitadel.management.v1.ManagementService.GetMyOrg".into(),
        )) else {
            panic!("no files");
        };
        assert_eq!(again.len(), 1, "imports already sent are not sent again");
        assert!(matches!(
            session.answer(Ask::Symbol(
                "grpc.health.v1.HealthCheckResponse.ServingStatus".into()
            )),
            Answer::Files(_)
        ));
        assert!(matches!(
            session.answer(Ask::Symbol("no.such.Thing".into())),
            Answer::Error(tonic::Code::NotFound, _)
        ));
        assert!(matches!(
            session.answer(Ask::File("nope.proto".into())),
            Answer::Error(tonic::Code::NotFound, _)
        ));
    }
}
