//! Generated prost messages and tonic clients/servers for every package under `proto/`, and the
//! compiled `FileDescriptorSet` that reflection and the transcoding gateway read.
//!
//! The module tree mirrors the protobuf packages: `zitadel.user.v2` is [`zitadel::user::v2`].
#![allow(missing_docs, unreachable_pub, clippy::all, clippy::unwrap_used)]

use std::sync::OnceLock;

/// The encoded `google.protobuf.FileDescriptorSet` of every file under `proto/`, including the
/// `google.api` annotations and the well-known types they import.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/descriptor_set.bin"));

/// The descriptor pool decoded from [`FILE_DESCRIPTOR_SET`], built once.
pub fn descriptor_pool() -> &'static prost_reflect::DescriptorPool {
    static POOL: OnceLock<prost_reflect::DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET)
            .expect("the descriptor set compiled by build.rs decodes")
    })
}

pub mod google {
    pub mod api {
        include!(concat!(env!("OUT_DIR"), "/google.api.rs"));
    }
    pub mod rpc {
        include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
    }
}

pub mod zitadel {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/zitadel.v1.rs"));
    }
    pub mod user {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/zitadel.user.v1.rs"));
        }
        pub mod v2 {
            include!(concat!(env!("OUT_DIR"), "/zitadel.user.v2.rs"));
        }
    }
    pub mod org {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/zitadel.org.v1.rs"));
        }
    }
    pub mod change {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/zitadel.change.v1.rs"));
        }
    }
    pub mod member {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/zitadel.member.v1.rs"));
        }
    }
    pub mod object {
        pub mod v2 {
            include!(concat!(env!("OUT_DIR"), "/zitadel.object.v2.rs"));
        }
    }
    pub mod management {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/zitadel.management.v1.rs"));
        }
    }
}

#[cfg(test)]
mod tests;
