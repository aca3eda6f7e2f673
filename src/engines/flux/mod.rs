//! FLUX.1 (schnell, dev): diffusers' FluxPipeline and FluxImg2ImgPipeline on candle. CLIP-L's
//! pooled output and T5's hidden states condition an MMDiT transformer (double- then
//! single-stream blocks, 3-axis RoPE over text + image ids) that predicts a flow over packed
//! 2x2 latent patches; a flow-matching Euler scheduler integrates it; a 16-channel VAE decodes.
//! The transformer and T5 may come from GGUF files (dequantized per layer or multiplied
//! quantized), which is how FLUX fits a 16 GB Mac.
pub mod transformer;
