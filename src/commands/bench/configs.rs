//! The full-size configurations benchmarks build: the public diffusers config.json files of
//! SD 1.5, SD 2.1 and SDXL base 1.0, committed verbatim under `configs/` (the diffusers script
//! reads the same files).

use crate::Error;

/// One model's diffusers files, as text.
#[derive(Debug, Clone, Copy)]
pub struct BenchModel {
    pub id: &'static str,
    pub model_index: &'static str,
    pub unet: &'static str,
    pub vae: &'static str,
    pub text_encoder: &'static str,
    pub text_encoder_2: Option<&'static str>,
    pub scheduler: &'static str,
}

macro_rules! cfg {
    ($id:literal, $file:literal) => {
        include_str!(concat!("configs/", $id, "/", $file))
    };
}

pub const MODELS: [BenchModel; 3] = [
    BenchModel {
        id: "sd15",
        model_index: cfg!("sd15", "model_index.json"),
        unet: cfg!("sd15", "unet/config.json"),
        vae: cfg!("sd15", "vae/config.json"),
        text_encoder: cfg!("sd15", "text_encoder/config.json"),
        text_encoder_2: None,
        scheduler: cfg!("sd15", "scheduler/scheduler_config.json"),
    },
    BenchModel {
        id: "sd21",
        model_index: cfg!("sd21", "model_index.json"),
        unet: cfg!("sd21", "unet/config.json"),
        vae: cfg!("sd21", "vae/config.json"),
        text_encoder: cfg!("sd21", "text_encoder/config.json"),
        text_encoder_2: None,
        scheduler: cfg!("sd21", "scheduler/scheduler_config.json"),
    },
    BenchModel {
        id: "sdxl",
        model_index: cfg!("sdxl", "model_index.json"),
        unet: cfg!("sdxl", "unet/config.json"),
        vae: cfg!("sdxl", "vae/config.json"),
        text_encoder: cfg!("sdxl", "text_encoder/config.json"),
        text_encoder_2: Some(cfg!("sdxl", "text_encoder_2/config.json")),
        scheduler: cfg!("sdxl", "scheduler/scheduler_config.json"),
    },
];

impl BenchModel {
    /// The UNet's configuration; a broken committed file is reported, not unwrapped.
    pub fn unet_config(&self) -> crate::Result<crate::engines::sd::config::UNetConfig> {
        crate::engines::sd::config::UNetConfig::from_json(self.unet)
            .map_err(|e| Error::bad_input(format!("bench config for {}: {e}", self.id)))
    }
}

/// The configuration for `--model`; registry aliases of the same architecture map onto it.
pub fn find(model: &str) -> crate::Result<&'static BenchModel> {
    let id = match model.to_ascii_lowercase().as_str() {
        "sd15" | "sd1.5" | "sd-1.5" | "sd1" => "sd15",
        "sd21" | "sd2.1" | "sd-2.1" | "sd2" | "sd-turbo" | "sd-turbo-fp16" => "sd21",
        "sdxl" | "sdxl-base" | "sdxl-turbo" => "sdxl",
        other => other,
    }
    .to_string();
    MODELS.iter().find(|m| m.id == id).ok_or_else(|| {
        Error::bad_input(format!(
            "--model {model:?} has no benchmark configuration: use sd15, sd21 or sdxl"
        ))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engines::sd::config::{TextEncoderConfig, UNetConfig, VaeConfig};

    #[test]
    fn every_committed_config_parses_with_the_engine() {
        for m in &MODELS {
            let unet = UNetConfig::from_json(m.unet).unwrap();
            VaeConfig::from_json(m.vae).unwrap();
            TextEncoderConfig::from_json(m.text_encoder).unwrap();
            if let Some(t) = m.text_encoder_2 {
                assert!(
                    TextEncoderConfig::from_json(t)
                        .unwrap()
                        .projection_dim
                        .is_some()
                );
            }
            assert_eq!(unet.needs_added_conditioning(), m.id == "sdxl", "{}", m.id);
            serde_json::from_str::<serde_json::Value>(m.model_index).unwrap();
            serde_json::from_str::<serde_json::Value>(m.scheduler).unwrap();
        }
    }

    #[test]
    fn full_size_shapes_are_the_public_ones() {
        let sd15 = UNetConfig::from_json(find("sd15").unwrap().unet).unwrap();
        assert_eq!(sd15.block_out_channels, vec![320, 640, 1280, 1280]);
        assert_eq!(sd15.cross_attention_dim[0], 768);
        let xl = UNetConfig::from_json(find("SDXL").unwrap().unet).unwrap();
        assert_eq!(xl.transformer_layers_per_block, vec![1, 2, 10]);
        assert!(find("flux").unwrap_err().to_string().contains("sd15"));
    }
}
