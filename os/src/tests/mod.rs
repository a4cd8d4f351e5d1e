//! Unit tests, one module per wrapper family.

mod file;
mod futex;
mod mapping;
mod socket;
#[allow(unsafe_code)]
mod vm;
