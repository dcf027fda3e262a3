//! The store's shared test databases.

pub use omniforge_store::testing::*;
