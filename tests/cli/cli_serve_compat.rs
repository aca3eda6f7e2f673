//! Black-box tests of `pallaidium serve`'s compatible subsets, answered as OpenAI's and A1111's
//! clients expect them (request and response shapes from their API references), and a fuzz-ish
//! run of malformed bodies at every endpoint that reads one: no 500, no crash.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use crate::serve::{Server, b64, png, unb64};

fn png_size(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png).unwrap();
    (img.width(), img.height())
}

#[test]
fn openai_generations_answer_b64_json_and_urls() {
    let server = Server::start(&[], &[]);
    let reply = server.post_json(
        "/v1/images/generations",
        &json!({"model": "dall-e-3", "prompt": "a fox", "n": 2, "size": "64x64",
                "response_format": "b64_json", "quality": "standard", "user": "u1"}),
    );
    reply.expect(200);
    let body = reply.json();
    assert!(body["created"].as_i64().unwrap() > 1_600_000_000);
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for item in data {
        assert_eq!(
            png_size(&unb64(item["b64_json"].as_str().unwrap())),
            (64, 64)
        );
    }

    let reply = server.post_json(
        "/v1/images/generations",
        &json!({"prompt": "a hen", "size": "64x64"}),
    );
    reply.expect(200);
    let url = reply.json()["data"][0]["url"].as_str().unwrap().to_owned();
    let path = url
        .strip_prefix(&server.base)
        .unwrap_or_else(|| panic!("{url}"));
    let image = server.get(path);
    assert_eq!(
        (image.status, image.content_type.as_str()),
        (200, "image/png")
    );
    assert_eq!(png_size(&image.body), (64, 64));

    let refused = |body: Value, needle: &str| {
        let reply = server.post_json("/v1/images/generations", &body);
        assert_eq!(reply.status, 422, "{body}");
        let error = reply.json()["error"].clone();
        assert_eq!(error["type"], "invalid_request_error");
        assert!(
            error["message"].as_str().unwrap().contains(needle),
            "{error}"
        );
    };
    refused(json!({"prompt": "x", "n": 11}), "n: 11");
    refused(json!({"prompt": "x", "size": "big"}), "size");
    refused(
        json!({"prompt": "x", "response_format": "gif"}),
        "response_format",
    );
    refused(json!({"n": 1}), "prompt");
    refused(json!({"prompt": "x", "size": "65x64"}), "width");

    let models = server.get("/v1/models").json();
    assert_eq!(models["object"], "list");
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["object"] == "model")
    );
}

/// A multipart/form-data body of text and file fields, as OpenAI's clients send edits.
fn form(fields: &[(&str, &[u8], bool)]) -> (String, Vec<u8>) {
    let boundary = "pallaidium-test-boundary-7f3a";
    let mut body = Vec::new();
    for (name, value, file) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        if *file {
            body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{name}.png\"\r\n\
                     Content-Type: image/png\r\n\r\n"
                )
                .as_bytes(),
            );
        } else {
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            );
        }
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn openai_edits_redraw_and_inpaint_uploaded_images() {
    let server = Server::start(&[], &[]);
    let image = png(64);
    let (kind, body) = form(&[
        ("image", &image, true),
        ("prompt", b"the same, at night", false),
        ("n", b"1", false),
        ("size", b"64x64", false),
        ("response_format", b"b64_json", false),
    ]);
    let reply = server.post_with_type("/v1/images/edits", &kind, &body);
    reply.expect(200);
    let data = reply.json()["data"].clone();
    assert_eq!(
        png_size(&unb64(data[0]["b64_json"].as_str().unwrap())),
        (64, 64)
    );

    // A mask whose transparent half is repainted, on the inpainting fixture.
    let mask = {
        let rgba = image::RgbaImage::from_fn(64, 64, |x, _| {
            image::Rgba([0, 0, 0, if x < 32 { 0 } else { 255 }])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        rgba.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let model = crate::run::fixture("sd1-inpaint-tiny");
    let (kind, body) = form(&[
        ("image[]", &image, true),
        ("mask", &mask, true),
        ("prompt", b"a window", false),
        ("model", model.to_str().unwrap().as_bytes(), false),
        ("size", b"64x64", false),
    ]);
    let reply = server.post_with_type("/v1/images/edits", &kind, &body);
    reply.expect(200);
    let url = reply.json()["data"][0]["url"].as_str().unwrap().to_owned();
    let job: i64 = url.split('/').rev().nth(2).unwrap().parse().unwrap();
    let record = server.get(&format!("/api/v1/jobs/{job}")).json();
    assert_eq!(record["spec"]["kind"], "inpaint");

    let (kind, body) = form(&[("prompt", b"no image", false)]);
    assert_eq!(
        server
            .post_with_type("/v1/images/edits", &kind, &body)
            .status,
        422
    );
    assert_eq!(
        server
            .post("/v1/images/edits", b"{\"prompt\": \"json\"}")
            .status,
        400
    );
}

#[test]
fn a1111_txt2img_img2img_options_and_models() {
    let server = Server::start(&[], &[]);
    let reply = server.post_json(
        "/sdapi/v1/txt2img",
        &json!({"prompt": "a lighthouse", "negative_prompt": "fog", "seed": 5, "steps": 2,
                "cfg_scale": 6.5, "width": 64, "height": 64, "sampler_name": "Euler a",
                "batch_size": 2, "n_iter": 1, "restore_faces": false, "send_images": true}),
    );
    reply.expect(200);
    let body = reply.json();
    let images = body["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(png_size(&unb64(images[0].as_str().unwrap())), (64, 64));
    assert_eq!(body["parameters"]["prompt"], "a lighthouse");
    let info: Value = serde_json::from_str(body["info"].as_str().unwrap()).unwrap();
    assert_eq!(info["seed"], 5);
    assert_eq!(info["all_seeds"], json!([5, 6]));
    assert_eq!(info["negative_prompt"], "fog");
    assert_eq!(info["cfg_scale"], 6.5);
    assert_eq!(info["sampler_name"], "euler-a");

    let init = format!("data:image/png;base64,{}", b64(&png(64)));
    let reply = server.post_json(
        "/sdapi/v1/img2img",
        &json!({"prompt": "a lighthouse", "init_images": [init], "denoising_strength": 0.5,
                "steps": 2, "width": 64, "height": 64, "seed": -1}),
    );
    reply.expect(200);
    assert_eq!(reply.json()["images"].as_array().unwrap().len(), 1);
    let missing = server.post_json("/sdapi/v1/img2img", &json!({"prompt": "x"}));
    assert_eq!(missing.status, 422);
    let sampler = server.post_json(
        "/sdapi/v1/txt2img",
        &json!({"prompt": "x", "sampler_name": "LMS"}),
    );
    assert_eq!(sampler.status, 422);
    assert!(sampler.message().contains("sampler_name"));

    let models = server.get("/sdapi/v1/sd-models").json();
    let titles: Vec<&str> = models
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["title"].as_str().unwrap())
        .collect();
    assert!(
        titles[0].ends_with("sd1-tiny"),
        "the server's model first: {titles:?}"
    );
    assert!(titles.contains(&"sd15"));
    let samplers = server.get("/sdapi/v1/samplers").json();
    assert!(
        samplers
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "Euler a")
    );

    let options = server.get("/sdapi/v1/options").json();
    assert!(
        options["sd_model_checkpoint"]
            .as_str()
            .unwrap()
            .ends_with("sd1-tiny")
    );
    let set = server.post_json(
        "/sdapi/v1/options",
        &json!({"sd_model_checkpoint": "sd15", "CLIP_stop_at_last_layers": 1}),
    );
    assert_eq!((set.status, set.json()), (200, Value::Null));
    assert_eq!(
        server.get("/sdapi/v1/options").json()["sd_model_checkpoint"],
        "sd15"
    );
    assert_eq!(
        server
            .post_json("/sdapi/v1/options", &json!({"sd_model_checkpoint": 3}))
            .status,
        422
    );
}

/// A small deterministic generator (no extra crate): xorshift.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Values of a type none of the fields below takes.
fn wrong_value(noise: &mut Noise) -> Value {
    match noise.below(4) {
        0 => json!({"nested": [1, {"deeper": true}]}),
        1 => json!([[], [[]]]),
        2 => json!(1e308),
        _ => json!(-9_223_372_036_854_775_807i64),
    }
}

#[test]
fn malformed_bodies_are_refused_without_a_500_or_a_crash() {
    let server = Server::start(&[], &[]);
    let valid: [(&str, Value); 6] = [
        (
            "/api/v1/jobs",
            json!({"job": {"prompt": "x", "steps": 2}, "files": {"mask": "AAAA"}}),
        ),
        (
            "/v1/images/generations",
            json!({"prompt": "x", "n": 1, "size": "64x64"}),
        ),
        (
            "/sdapi/v1/txt2img",
            json!({"prompt": "x", "steps": 2, "width": 64}),
        ),
        (
            "/sdapi/v1/img2img",
            json!({"prompt": "x", "init_images": ["AAAA"]}),
        ),
        ("/sdapi/v1/options", json!({"sd_model_checkpoint": "sd15"})),
        ("/api/v1/jobs/1/move", json!({"index": 0})),
    ];
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut tried = 0;
    for round in 0..60 {
        for (path, body) in &valid {
            let text = body.to_string();
            let candidate: Vec<u8> = match round % 6 {
                // Random bytes.
                0 => (0..noise.below(300)).map(|_| noise.next() as u8).collect(),
                // The valid body cut short.
                1 => text.as_bytes()[..noise.below(text.len() - 1)].to_vec(),
                // One field of the wrong type.
                2 => {
                    let mut v = body.clone();
                    let obj = v.as_object_mut().unwrap();
                    let keys: Vec<String> = obj.keys().cloned().collect();
                    let key = &keys[noise.below(keys.len())];
                    obj.insert(key.clone(), wrong_value(&mut noise));
                    v.to_string().into_bytes()
                }
                // Not an object at all.
                3 => {
                    [&b"[1,2,3]"[..], b"null", b"\"text\"", b"42", b"true"][noise.below(5)].to_vec()
                }
                // Deep nesting, over serde's recursion limit.
                4 => {
                    let depth = 200 + noise.below(5000);
                    format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
                }
                // A byte no JSON text holds (invalid UTF-8, a raw control character).
                _ => {
                    let mut bytes = text.into_bytes();
                    let at = noise.below(bytes.len());
                    bytes[at] = [0xff, 0x00, 0xc3, 0x07][noise.below(4)];
                    bytes
                }
            };
            let reply = server.post(path, &candidate);
            tried += 1;
            assert!(
                (400..500).contains(&reply.status),
                "{path} answered {} to {:?}: {}",
                reply.status,
                String::from_utf8_lossy(&candidate),
                String::from_utf8_lossy(&reply.body)
            );
            assert!(reply.json()["error"]["message"].is_string());
        }
    }
    assert_eq!(tried, 360);
    assert_eq!(
        server.get("/api/v1/health").status,
        200,
        "the server is still up"
    );
}
