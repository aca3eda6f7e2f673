//! `pallaidium bench`: being written (issue 7).

use crate::cli::{BenchCommand, GlobalArgs};

pub fn run(_global: &GlobalArgs, _what: &BenchCommand) -> anyhow::Result<i32> {
    Err(crate::Error::bad_input("bench is not built yet").into())
}
