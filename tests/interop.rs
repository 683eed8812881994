//! Interop: real ZITADEL SDKs and gRPC-Web/Connect clients against the real binary.
