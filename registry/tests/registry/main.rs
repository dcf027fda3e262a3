//! Registry tests with real packages: the example skills packed from their directories, a
//! corpus of bad packages made here, the wasip1 adapter, and mutated packages.

mod common;
mod corpus;
mod examples;
mod mutations;
