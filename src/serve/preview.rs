//! `GET /api/v1/jobs/{id}/preview`: the newest latent preview of a job as a PNG, encoded in
//! memory from the event log (never a file on the server). `preview` events on the streams
//! carry its URL (`url`) so clients know where to fetch the pixels the JSON leaves out.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::jobs::JobId;
use crate::serve::body;
use crate::serve::error::{ApiError, ApiResult};
use crate::serve::events::EventLog;
use crate::serve::state::AppState;

/// The URL of `job`'s newest preview, as `preview` events carry it.
pub fn url(job: JobId) -> String {
    format!("/api/v1/jobs/{}/preview", job.0)
}

/// `job`'s newest preview still in the log, as a PNG.
pub fn newest_png(events: &EventLog, job: JobId) -> Option<Vec<u8>> {
    let (width, height, pixels) = events.preview(job)?;
    let image = image::RgbImage::from_raw(width, height, pixels.to_vec())?;
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).ok()?;
    Some(png.into_inner())
}

pub async fn job_preview(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> ApiResult<Response> {
    let id = body::job_id(path)?;
    state.record(id)?;
    let png = newest_png(&state.events, id).ok_or_else(|| {
        ApiError::NotFound(format!(
            "job {id} has no preview yet (the server makes them with `--preview`)"
        ))
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        png,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::JobEvent;

    #[test]
    fn the_newest_preview_comes_back_as_a_png_and_its_url_is_in_the_event() {
        let log = EventLog::new(10);
        let job = JobId(3);
        assert!(newest_png(&log, job).is_none());
        for shade in [10u8, 200] {
            log.push(JobEvent::Preview {
                job,
                width: 2,
                height: 1,
                pixels: vec![shade; 6],
            });
        }
        let png = newest_png(&log, job).unwrap();
        let back = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(back.dimensions(), (2, 1));
        assert_eq!(back.as_raw(), &vec![200u8; 6]);
        let (logged, _) = log.since(0, Some(job));
        let json: serde_json::Value = serde_json::from_str(&logged[0].json).unwrap();
        assert_eq!(json["url"], "/api/v1/jobs/3/preview");
        assert_eq!(json["event"], "preview");
        assert!(
            matches!(&*logged[1].event, JobEvent::Preview { pixels, .. } if pixels.is_empty()),
            "the logged events keep no pixels"
        );
        assert!(newest_png(&log, JobId(4)).is_none(), "another job's");
    }
}
