//! The skill services behind the API: resolution and preparation of versions, tenant
//! policies, the usage meter, and the database-backed `kv` capability.

pub mod catalog;
pub mod kv;
pub mod meter;
pub mod policy;
