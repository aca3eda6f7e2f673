//! What one request may ask for beyond the job rules the CLI applies: how long its texts may be,
//! and that it names no file on the server (inputs are uploaded).

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::jobs::spec::JobOverrides;
use crate::serve::error::ApiError;

/// The most characters a prompt (or negative prompt, or voice) may have.
pub const MAX_PROMPT_CHARS: usize = 8_000;

/// The events the server keeps for streams to resume from.
pub const RETAINED_EVENTS: usize = 20_000;

/// The log lines the server keeps for `GET /api/v1/logs`.
pub const RETAINED_LOG_LINES: usize = 2_000;

/// The most jobs a list answers with.
pub const MAX_LIST: usize = 1_000;

/// A refused body up to this many times `--max-body` is read and dropped before the answer, so
/// the connection closes cleanly and the client reads its 413 (a socket closed with unread bytes
/// is reset, and the reset can destroy the answer); a larger one is refused unread.
const DRAIN_FACTOR: u64 = 8;
/// How long a refused body may take to arrive before the answer goes out anyway.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Refuses a body whose announced length is over `--max-body` (one sent without a length is cut
/// at the limit as it is read).
pub async fn announced_size(State(max): State<usize>, request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let max_bytes = u64::try_from(max).unwrap_or(u64::MAX);
    match announced {
        Some(bytes) if bytes > max_bytes => {
            if bytes <= max_bytes.saturating_mul(DRAIN_FACTOR) {
                let cap = usize::try_from(bytes).unwrap_or(usize::MAX);
                let drain = axum::body::to_bytes(request.into_body(), cap);
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
            }
            ApiError::TooLarge(format!(
                "the body is {bytes} bytes; this server takes at most {max} (--max-body)"
            ))
            .into_response()
        }
        _ => next.run(request).await,
    }
}

/// Refuses texts longer than the server takes.
pub fn check_texts(job: &JobOverrides) -> Result<(), ApiError> {
    for (name, text) in [
        ("prompt", &job.prompt),
        ("negative", &job.negative),
        ("voice", &job.voice),
    ] {
        let chars = text.as_deref().map_or(0, |t| t.chars().count());
        if chars > MAX_PROMPT_CHARS {
            return Err(ApiError::Unprocessable(format!(
                "{name}: {chars} characters; this server takes at most {MAX_PROMPT_CHARS}"
            )));
        }
    }
    Ok(())
}

/// Refuses a job that names files on the server: a client uploads its inputs (`files`), so a
/// request can read nothing the server's user did not put there. Model folders stay allowed:
/// the server's models are what it serves.
pub fn check_no_paths(job: &JobOverrides) -> Result<(), ApiError> {
    let named = [
        ("init-image", job.init_image.is_some()),
        ("last-image", job.last_image.is_some()),
        ("mask", job.mask.is_some()),
        ("caption", job.caption.is_some()),
        ("image", job.image.is_some()),
        ("audio", job.audio.is_some()),
        ("init-latents", job.init_latents.is_some()),
        ("transformer", job.transformer.is_some()),
        ("text-encoder-2", job.text_encoder_2.is_some()),
        ("lora", job.lora.is_some()),
        ("control-image", job.control_image.is_some()),
    ];
    match named.iter().find(|(_, set)| *set) {
        None => Ok(()),
        Some((key, _)) => {
            let fix = if super::uploads::UPLOADABLE.contains(key) {
                format!("send the file's bytes, base64, as files.{key}")
            } else {
                "the server's operator sets it (a job flag before `serve`)".to_owned()
            };
            Err(ApiError::Unprocessable(format!(
                "job.{key}: a request names no file on the server; {fix}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_and_server_paths_are_refused() {
        let mut job = JobOverrides {
            prompt: Some("a".repeat(MAX_PROMPT_CHARS)),
            ..JobOverrides::default()
        };
        assert!(check_texts(&job).is_ok());
        job.negative = Some("é".repeat(MAX_PROMPT_CHARS + 1));
        let err = check_texts(&job).unwrap_err();
        assert!(
            err.to_string().starts_with("negative: 8001 characters"),
            "{err}"
        );

        assert!(check_no_paths(&job).is_ok());
        job.mask = Some("/etc/passwd".into());
        let err = check_no_paths(&job).unwrap_err().to_string();
        assert!(err.contains("files.mask"), "{err}");
        job.mask = None;
        job.last_image = Some("/etc/passwd".into());
        let err = check_no_paths(&job).unwrap_err().to_string();
        assert!(err.contains("files.last-image"), "{err}");
        job.last_image = None;
        job.transformer = Some("x.gguf".into());
        let err = check_no_paths(&job).unwrap_err().to_string();
        assert!(err.contains("operator"), "{err}");
    }
}
