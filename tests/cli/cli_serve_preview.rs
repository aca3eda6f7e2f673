//! Black-box test of latent previews over the API: `pallaidium --preview serve` makes them
//! while a job runs; each `preview` event carries the URL of the newest one as a PNG, fetched
//! in memory by job id (never a path on the server).

#![allow(clippy::unwrap_used)]

use image::GenericImageView as _;
use serde_json::json;

use crate::serve::Server;

#[test]
fn preview_events_carry_a_url_that_serves_the_newest_preview_as_a_png() {
    let server = Server::start(&["--preview"], &[]);
    // Four steps: a preview after step 2 (never after the last one).
    let id = server.submit(json!({"prompt": "a previewed harbour", "seed": 5, "steps": 4}));
    let events = server.events(&format!("/api/v1/jobs/{id}/events"), None, 1000);
    assert_eq!(events.last().unwrap().data["event"], "done", "{events:?}");
    let preview = events
        .iter()
        .find(|e| e.data["event"] == "preview")
        .unwrap_or_else(|| panic!("no preview event: {events:?}"));
    let url = preview.data["url"].as_str().unwrap();
    assert_eq!(url, format!("/api/v1/jobs/{id}/preview"));
    assert!(preview.data["width"].as_u64().unwrap() > 0);

    let reply = server.get(url);
    assert_eq!(reply.status, 200, "{}", reply.message());
    assert_eq!(reply.content_type, "image/png");
    let image = image::load_from_memory(&reply.body).unwrap();
    assert_eq!(
        (u64::from(image.width()), u64::from(image.height())),
        (
            preview.data["width"].as_u64().unwrap(),
            preview.data["height"].as_u64().unwrap()
        )
    );

    // The client the TUI uses in `--host` mode gets the same pixels.
    let remote = pallaidium::serve::remote::Remote::new(&server.base, None).unwrap();
    let (width, height, pixels) = remote.preview(pallaidium::jobs::JobId(id)).unwrap();
    assert_eq!((width, height), image.dimensions());
    assert_eq!(pixels, image.to_rgb8().into_raw());

    // A job without previews (or none) answers 404 with what to do.
    let missing = server.get("/api/v1/jobs/999/preview");
    assert_eq!(missing.status, 404);
    assert!(remote.preview(pallaidium::jobs::JobId(999)).is_err());
}

#[test]
fn a_server_without_preview_has_none_to_give_and_wants_the_token() {
    let server =
        crate::serve::Server::start_in(crate::run::Run::new(), &[], &[], Some("tok-preview-71c2"));
    let id = server.submit(json!({"prompt": "an unpreviewed harbour", "seed": 5, "steps": 4}));
    let events = server.events(&format!("/api/v1/jobs/{id}/events"), None, 1000);
    assert_eq!(events.last().unwrap().data["event"], "done", "{events:?}");
    assert!(
        events.iter().all(|e| e.data["event"] != "preview"),
        "{events:?}"
    );
    let path = format!("/api/v1/jobs/{id}/preview");
    assert_eq!(server.get_with_token(&path, None).status, 401);
    assert_eq!(server.get_with_token(&path, Some("wrong")).status, 403);
    let none = server.get(&path);
    assert_eq!(none.status, 404);
    assert!(none.message().contains("--preview"), "{}", none.message());
}

#[test]
fn a_video_job_previews_its_middle_latent_frame() {
    let server = Server::start(&["--preview"], &[]);
    let model = crate::run::fixture("wan-t2v-tiny");
    // Four steps: previews after steps 2 (never after the last), of the middle latent frame at
    // latent size (96x64 / 8).
    let id = server.submit(json!({
        "model": model, "kind": "txt2vid", "prompt": "a previewed fox", "seed": 5,
        "steps": 4, "frames": 9, "width": 96, "height": 64, "dtype": "f32"
    }));
    let events = server.events(&format!("/api/v1/jobs/{id}/events"), None, 1000);
    assert_eq!(events.last().unwrap().data["event"], "done", "{events:?}");
    let preview = events
        .iter()
        .find(|e| e.data["event"] == "preview")
        .unwrap_or_else(|| panic!("no preview event: {events:?}"));
    assert_eq!(
        (
            preview.data["width"].as_u64(),
            preview.data["height"].as_u64()
        ),
        (Some(12), Some(8))
    );
    let reply = server.get(preview.data["url"].as_str().unwrap());
    assert_eq!(reply.status, 200, "{}", reply.message());
    let image = image::load_from_memory(&reply.body).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (12, 8));
    // Noise-like latents, not a flat frame.
    let first = image.get_pixel(0, 0);
    assert!(image.pixels().any(|p| p != first));
}
