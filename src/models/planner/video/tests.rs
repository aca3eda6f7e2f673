#![allow(clippy::unwrap_used)]
use super::*;

const GIB: u64 = 1 << 30;

/// Wan 2.1 T2V-1.3B at bf16: UMT5-XXL's 5.7B parameters (its largest tensor, the 256384 x
/// 4096 embedding, stored in bf16), the 1.4B transformer, the 127M VAE (diffusers' defaults
/// are Wan 2.1's).
fn wan_1_3b(frames: u32) -> VideoPlanRequest {
    let vae = VideoVae::Wan(serde_json::from_str("{}").unwrap());
    VideoPlanRequest {
        text_encoder_bytes: 11_360_000_000,
        transformer_bytes: 2_840_000_000,
        vae_bytes: 254_000_000,
        largest_tensor_bytes: 1_050_000_000,
        text_width: 4096,
        text_tokens: 512,
        dit: DitShape {
            dim: 1536,
            heads: 12,
            ffn: 8960,
            pixels_per_token: 16,
            frames_per_token: 1,
        },
        vae,
        first_frame: None,
        frames,
        width: 832,
        height: 480,
        guided: true,
        dtype: DType::BF16,
        device: Backend::Metal,
        memory: DeviceMemory::Unified {
            total: 16 * GIB,
            budget: 16 * GIB,
            used: 0,
        },
        budget_cap: Some(16 * GIB),
        overrides: Overrides::default(),
    }
}

#[test]
fn wan_1_3b_480p_33_frames_fits_16_gib_unified_staged() {
    let plan = plan_video(&wan_1_3b(33));
    assert!(plan.fits, "{plan:?}");
    // Resident, the encoder and the transformer together do not fit: staged.
    assert_eq!(plan.residency, Residency::Staged, "{plan:?}");
    let stages: Vec<&str> = plan.steps.iter().map(|s| s.stage.as_str()).collect();
    assert!(stages.contains(&"denoise (transformer)"), "{stages:?}");
    // 481 frames at 1280x720 in f32 does not fit, and says what would.
    let mut big = wan_1_3b(481);
    big.width = 1280;
    big.height = 720;
    big.dtype = DType::F32;
    let plan = plan_video(&big);
    assert!(!plan.fits);
    assert!(
        plan.suggestions.iter().any(|s| s.contains("--frames")),
        "{plan:?}"
    );
}

/// Wan 2.1 I2V at 480p: the CLIP image encoder and the VAE's encode of the whole clip are
/// stages of their own, before the prompt; staged, each holds only its own weights.
#[test]
fn image_to_video_counts_its_encoders() {
    let mut req = wan_1_3b(33);
    req.overrides.residency = Some(Residency::Staged);
    req.first_frame = Some(FirstFrame {
        image_encoder_bytes: 1_260_000_000,
        whole_clip: true,
    });
    let i2v = plan_video(&req);
    let stages: Vec<&str> = i2v.steps.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(
        &stages[..5],
        [
            "load image encoder",
            "encode image (CLIP)",
            "load vae (encoder)",
            "encode first frame (VAE)",
            "load text encoder"
        ],
        "{stages:?}"
    );
    let clip = &i2v.steps[1];
    assert_eq!(clip.weights_bytes, 1_260_000_000);
    // The whole clip's encode works on more than one frame's (TI2V): the causal VAE runs a
    // chunk of frames at a time, so not by the frame count.
    let whole = i2v.steps[3].working_bytes;
    req.first_frame = Some(FirstFrame {
        image_encoder_bytes: 0,
        whole_clip: false,
    });
    let ti2v = plan_video(&req);
    let one = ti2v
        .steps
        .iter()
        .find(|s| s.stage == "encode first frame (VAE)")
        .unwrap()
        .working_bytes;
    assert!(one < whole, "{one} vs {whole}");
    assert!(!ti2v.steps.iter().any(|s| s.stage.contains("CLIP")));
    // Resident, the image encoder's weights are held all along.
    req.overrides.residency = Some(Residency::Resident);
    req.first_frame = Some(FirstFrame {
        image_encoder_bytes: 1_260_000_000,
        whole_clip: true,
    });
    let resident = plan_video(&req);
    assert_eq!(
        resident.steps[0].weights_bytes,
        req.text_encoder_bytes + req.transformer_bytes + req.vae_bytes + 1_260_000_000
    );
}
