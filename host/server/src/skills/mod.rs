//! The skill services behind the API: resolution and preparation of versions, tenant
//! policies, the usage meter, the database-backed `kv` capability, and the checks of a
//! skill's input.

pub mod catalog;
pub mod compiles;
pub mod input;
pub mod kv;
pub mod meter;
pub mod packages;
pub mod policy;
