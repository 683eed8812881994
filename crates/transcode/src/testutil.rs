//! Test helpers: the descriptor pool compiled from `testdata/` with protox.

use prost_reflect::DescriptorPool;

/// Compiles `testdata/example/v1/library.proto` (and its imports).
pub(crate) fn library_pool() -> DescriptorPool {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
    let mut compiler = protox::Compiler::new([root]).expect("testdata include path");
    compiler.include_imports(true);
    compiler
        .open_file("example/v1/library.proto")
        .expect("library.proto compiles");
    compiler.descriptor_pool()
}
