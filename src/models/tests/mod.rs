//! Unit tests of the models module, one file per source file; `fixtures` builds folders on disk.

mod compat;
mod fixtures;
mod hf_cache;
mod layout;
mod registry;
mod resolve;
