//! REST, gRPC-Web and Connect against the real binary: the same calls, the same errors.
