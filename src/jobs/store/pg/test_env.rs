//! The PostgreSQL server the tests use: `PALLAIDIUM_TEST_POSTGRES` (a URL; .ci/run starts a
//! server and sets it). Without it the PostgreSQL tests are skipped with a printed reason on a
//! developer's machine, and fail under CI (`CI` set), where a skip would hide a broken queue.

use postgres::{Client, NoTls};

pub const URL_VAR: &str = "PALLAIDIUM_TEST_POSTGRES";

/// The test server's URL, or None (after saying why) when the tests should be skipped.
///
/// # Panics
/// When the variable is missing under CI.
pub fn url() -> Option<String> {
    let set = crate::platform::switches::Switches::from_env()
        .ok()
        .and_then(|s| s.test_postgres);
    match set {
        Some(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => panic!(
            "{URL_VAR} is not set under CI: .ci/run starts PostgreSQL and sets it; the queue \
             tests must not be skipped there"
        ),
        _ => {
            eprintln!(
                "skipped: {URL_VAR} is not set (a postgres:// URL of a server the tests may \
                 create schemas in; .ci/run sets it)"
            );
            None
        }
    }
}

/// A fresh, empty schema on the test server for one test, and the URL whose connections use
/// it (so tests running at once never see each other's jobs).
///
/// # Errors
/// When the server cannot be reached or refuses to create the schema.
pub fn fresh_schema(url: &str, name: &str) -> Result<String, postgres::Error> {
    let schema = format!(
        "t_{}_{}_{}",
        name.chars()
            .filter(char::is_ascii_alphanumeric)
            .take(20)
            .collect::<String>()
            .to_ascii_lowercase(),
        std::process::id(),
        crate::jobs::store::now_ms()
    );
    let mut admin = Client::connect(url, NoTls)?;
    admin.batch_execute(&format!("CREATE SCHEMA {schema}"))?;
    let joiner = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{joiner}options=-csearch_path%3D{schema}"))
}
