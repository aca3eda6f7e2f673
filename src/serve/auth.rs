//! Who may call the API: a bearer token read from `--token-file`, compared in constant time
//! (SHA-256 of both sides, then `subtle`), never logged; and the rule that an address other
//! machines can reach needs one.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::serve::error::ApiError;

/// The server's token, kept as its digest only; `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

impl Token {
    pub fn new(secret: &str) -> Self {
        Self {
            digest: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    /// The token in `path` (see `read_token_file`).
    pub fn from_file(path: &Path) -> crate::Result<Self> {
        read_token_file(path).map(|secret| Self::new(&secret))
    }

    /// Whether `offered` is the token, in time that does not depend on where they differ.
    pub fn matches(&self, offered: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(offered.as_bytes()).into();
        bool::from(self.digest.ct_eq(&digest))
    }
}

/// The token in `path`: its first line, surrounding white space trimmed. An unreadable or
/// empty file is bad input (exit 2); the message never quotes the file's content.
pub fn read_token_file(path: &Path) -> crate::Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        crate::Error::bad_input(format!(
            "--token-file {}: cannot read it ({e})",
            path.display()
        ))
    })?;
    let secret = text.lines().next().unwrap_or_default().trim();
    if secret.is_empty() {
        return Err(crate::Error::bad_input(format!(
            "--token-file {}: it is empty; put the bearer token on its first line",
            path.display()
        )));
    }
    Ok(secret.to_owned())
}

/// Refuses to listen where other machines can reach the API without a token.
pub fn check_exposure(listen: SocketAddr, has_token: bool) -> crate::Result<()> {
    if listen.ip().is_loopback() || has_token {
        return Ok(());
    }
    Err(crate::Error::bad_input(format!(
        "--listen {listen} is reachable from other machines: pass --token-file PATH (a bearer \
         token every request must send), or listen on 127.0.0.1"
    )))
}

/// The middleware: no token configured lets everything through; otherwise a request without a
/// bearer token is 401 and one with another token 403.
pub async fn require_token(
    State(token): State<Option<Arc<Token>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(request).await;
    };
    let offered = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match offered {
        None => {
            let mut refused = ApiError::response(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this server needs a bearer token: send `Authorization: Bearer TOKEN`",
            );
            refused.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            refused
        }
        Some(offered) if token.matches(offered) => next.run(request).await,
        Some(_) => {
            tracing::warn!(path = %request.uri().path(), "a request with a wrong token was refused");
            ApiError::response(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the bearer token is not this server's",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_themselves_and_never_show() {
        let t = Token::new("s3cret");
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches(""));
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn token_files_are_trimmed_and_empty_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  abc \nignored\n").unwrap();
        assert!(Token::from_file(&path).unwrap().matches("abc"));
        std::fs::write(&path, "\n").unwrap();
        let err = Token::from_file(&path).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(Token::from_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn only_loopback_may_go_without_a_token() {
        let open: SocketAddr = "0.0.0.0:7860".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:7860".parse().unwrap();
        let local6: SocketAddr = "[::1]:7860".parse().unwrap();
        assert!(check_exposure(local, false).is_ok());
        assert!(check_exposure(local6, false).is_ok());
        assert!(check_exposure(open, true).is_ok());
        let err = check_exposure(open, false).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--token-file"));
    }
}
