#!/usr/bin/env python3
"""Audio and text engines at REAL model size: random weights with the real configurations, timed in
transformers / parler_tts and in our release binary on the same folders (issue 8).

    /opt/fixvenv/bin/python scripts/bench_media.py            # build what is missing, then bench all
    /opt/fixvenv/bin/python scripts/bench_media.py --only blip,whisper --runs 3
    /opt/fixvenv/bin/python scripts/bench_media.py --rebuild   # rebuild /tmp/bench_models first

Needs target/release/pallaidium (`cargo build --release`), /opt/fixvenv (torch, transformers 5.x,
gguf, sentencepiece) and, for Parler, /opt/parlervenv (see tests/fixtures/make_parler.py's
docstring); the Parler parts run in that interpreter as a subprocess of this script.

Models, built under /tmp/bench_models/<id>/ in the real Hugging Face layout (the real repos' config
values, written out below; weights random; tokenizers small and synthetic as in the tiny fixtures'
make_*.py, but padded to the real vocabulary size where a shape or a special-token id depends on it):

  musicgen-small              facebook/musicgen-small (T5-base encoder, 24x1024 decoder, 32 kHz EnCodec)
  parler-tts-mini-v1          parler-tts/parler-tts-mini-v1 (flan-t5-large, 24x1024 decoder, 44.1 kHz DAC)
  blip-image-captioning-base  Salesforce/blip-image-captioning-base (ViT-B/16 at 384, BERT-base decoder)
  qwen2.5-0.5b-instruct-gguf  Qwen/Qwen2.5-0.5B-Instruct as ONE Q8_0 GGUF (llama.cpp layout, every
                              matrix Q8_0, norms f32); transformers gets the same Q8_0-rounded weights
                              as f32 safetensors in qwen2.5-0.5b-instruct-hf/, and our binary runs a
                              second time on the same rounded values as an F32 GGUF (same precision)
  whisper-base                openai/whisper-base (6+6 layers, d_model 512, vocab 51865)

Work, the same on both sides (prompt, lengths, decoding rule):
  music    4 s = 200 frames (203 decoder steps, CFG 3 -> batch 2), GREEDY (generation_config.json
           says do_sample false here; the real file samples with top-k 250): the audio is compared
  tts      3 s = 258 frames (max_length 267), sampling, temperature 1, top-k 50 (our binary always
           samples speech): timing only
  caption  64 new tokens, greedy, a 640x480 image: captions compared
  enhance  64 new tokens, sampling, temperature 0.7, top-p 0.9 (what the binary uses): timing only
  stt      64 new tokens, greedy, timestamps on, language en, tests/fixtures/audio/speech.wav:
           transcripts compared
Random weights would stop early, so the stop token is made unreachable in the weights themselves
(our binary has no min-length switch): BLIP's [SEP] bias, Whisper's <|endoftext|> and Qwen's
<|im_end|>/<|endoftext|> embedding rows (tied heads) zeroed so their logit is 0, Parler's rows from
EOS up (EOS, BOS and the padding rows 1026..1087, which a trained model never picks and whose frames
both sides would drop) driven to -1000 through a constant channel of the final layer norm;
transformers also gets min_new_tokens for BLIP and Qwen. MusicGen has no stop token. Qwen's rows past
the synthetic tokenizer (padding, as Qwen2.5's untrained rows past 151665) are zero too; with the
0.02 init, top-p sampling then mostly picks padding ids, so the enhanced "prompt" is empty-ish on
both sides; the work (64 sampled steps over 151936 logits) is the same.

Python timings run in a fresh subprocess per run, --runs runs per model, median reported (load = from_pretrained + tokenizer/processor,
generate = the generate() call plus decoding to audio/text; peak = ru_maxrss of that process, torch
import included). Ours: the release binary, --runs times (median), load/generate from the `done`
line's timings and peak from its peak_bytes. Results: /tmp/bench_models/results.json and a markdown
table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIX = REPO / "tests" / "fixtures"
ROOT = Path("/tmp/bench_models")
BIN = REPO / "target" / "release" / "pallaidium"
FIXPY = "/opt/fixvenv/bin/python"
PARLERPY = "/opt/parlervenv/bin/python"
IDS = ["musicgen-small", "parler-tts-mini-v1", "blip-image-captioning-base", "qwen2.5-0.5b-instruct-gguf",
       "whisper-base"]
SHORT = {"musicgen": "musicgen-small", "parler": "parler-tts-mini-v1", "blip": "blip-image-captioning-base",
         "enhance": "qwen2.5-0.5b-instruct-gguf", "qwen": "qwen2.5-0.5b-instruct-gguf", "whisper": "whisper-base"}

MUSIC_PROMPT = "lofi hip hop beat with vinyl crackle and jazzy chords"
MUSIC_SECONDS = 4.0
MUSIC_FRAMES = 200  # 4 s at 50 frames/s
MUSIC_STEPS = MUSIC_FRAMES + 4 - 1  # the delay pattern adds codebooks - 1 steps
TTS_TEXT = "Hey, how are you doing today? The weather is lovely."
TTS_VOICE = "A female speaker delivers a slightly expressive and animated speech with a moderate speed."
TTS_SECONDS = 3.0
TTS_FRAMES = 258  # ceil(3 * 86)
TTS_MAX_LENGTH = TTS_FRAMES + 9  # + codebooks: our engine's Plan.max_length (BOS column included)
TEXT_TOKENS = 64
ENHANCE_IDEA = "a fox in a snowy forest at dawn"
PARLER_EOS = 1024
WHISPER_LANGS_RS = REPO / "src" / "engines" / "text" / "whisper" / "languages.rs"


def rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def fixture_module(name: str):
    sys.path.insert(0, str(FIX))
    return __import__(name)


# ----------------------------------------------------------------------------------------------
# Builders (one subprocess each, so their memory never counts against a timing)
# ----------------------------------------------------------------------------------------------

def rename_weight_norm(path: Path) -> None:
    """Real MusicGen / Parler checkpoints store the codecs' weight norm as weight_g / weight_v."""
    from safetensors.torch import load_file, save_file
    tensors = load_file(str(path))
    renamed = {k.replace("parametrizations.weight.original0", "weight_g")
                .replace("parametrizations.weight.original1", "weight_v"): v.contiguous()
               for k, v in tensors.items()}
    save_file(renamed, str(path), metadata={"format": "pt"})


def single_file(out: Path) -> None:
    """Our loaders read model.safetensors or a sharded index; make sure it is one or the other."""
    assert (out / "model.safetensors").exists() or (out / "model.safetensors.index.json").exists(), out


def build_musicgen(out: Path) -> None:
    import torch
    from transformers import (EncodecConfig, EncodecFeatureExtractor, MusicgenConfig, MusicgenDecoderConfig,
                              MusicgenForConditionalGeneration, T5Config)
    mg = fixture_module("make_musicgen")
    torch.manual_seed(0)
    tmp = tempfile.mkdtemp()
    tokenizer, spiece = mg.build_tokenizer(tmp)
    # facebook/musicgen-small config.json
    text_cfg = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_decoder_layers=12,
                        num_heads=12, relative_attention_num_buckets=32, relative_attention_max_distance=128,
                        feed_forward_proj="relu", dropout_rate=0.1, layer_norm_epsilon=1e-6,
                        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    audio_cfg = EncodecConfig(target_bandwidths=[2.2], sampling_rate=32000, audio_channels=1, normalize=False,
                              chunk_length_s=None, overlap=None, hidden_size=128, num_filters=64,
                              num_residual_layers=1, upsampling_ratios=[8, 5, 4, 4], norm_type="weight_norm",
                              kernel_size=7, last_kernel_size=7, residual_kernel_size=3, dilation_growth_rate=2,
                              use_causal_conv=False, pad_mode="reflect", compress=2, num_lstm_layers=2,
                              trim_right_ratio=1.0, codebook_size=2048, codebook_dim=128,
                              use_conv_shortcut=False)
    dec_cfg = MusicgenDecoderConfig(vocab_size=2048, max_position_embeddings=2048, num_hidden_layers=24,
                                    ffn_dim=4096, num_attention_heads=16, hidden_size=1024, num_codebooks=4,
                                    audio_channels=1, pad_token_id=2048, bos_token_id=2048,
                                    decoder_start_token_id=2048, activation_function="gelu", dropout=0.1,
                                    attention_dropout=0.0, activation_dropout=0.0, layerdrop=0.0,
                                    scale_embedding=False, tie_word_embeddings=False)
    config = MusicgenConfig(text_encoder=text_cfg, audio_encoder=audio_cfg, decoder=dec_cfg)
    model = MusicgenForConditionalGeneration(config).eval()
    with torch.no_grad():
        # The codebooks start at zero (silence, which our binary rejects as broken); draw them.
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.copy_(torch.randn_like(layer.codebook.embed))
    gen = model.generation_config
    gen.update(bos_token_id=2048, pad_token_id=2048, decoder_start_token_id=2048, guidance_scale=3.0,
               max_length=1500, top_k=250)
    gen.do_sample = True
    model.save_pretrained(out)
    # The real file samples; greedy here so the audio can be compared (transformers refuses to save
    # do_sample false beside top_k, so the JSON is edited).
    gpath = out / "generation_config.json"
    gcfg = json.loads(gpath.read_text())
    gcfg["do_sample"] = False
    gcfg.pop("_from_model_config", None)
    gpath.write_text(json.dumps(gcfg, indent=2) + "\n")
    single_file(out)
    if (out / "model.safetensors").exists():
        rename_weight_norm(out / "model.safetensors")
    EncodecFeatureExtractor(feature_size=1, sampling_rate=32000, padding_value=0.0).save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "special_tokens_map.json").write_text(
        json.dumps({"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}, indent=2))
    shutil.copy(spiece, out / "spiece.model")
    for junk in ("processor_config.json", "chat_template.jinja"):
        (out / junk).unlink(missing_ok=True)
    shutil.rmtree(tmp)


def build_parler(out: Path) -> None:
    # Runs in /opt/parlervenv (parler_tts + transformers 4.46.1); make_parler installs its stubs.
    mp = fixture_module("make_parler")
    import torch
    from parler_tts import ParlerTTSConfig, ParlerTTSDecoderConfig, ParlerTTSForConditionalGeneration
    from parler_tts.dac_wrapper import DACConfig
    from transformers import T5Config
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tok = mp.build_tokenizer(Path(tmp))
        tok.save_pretrained(out)
    # parler-tts/parler-tts-mini-v1 config.json: flan-t5-large encoder, 24-layer decoder, 44.1 kHz DAC.
    t5 = T5Config(vocab_size=32128, d_model=1024, d_kv=64, d_ff=2816, num_layers=24, num_decoder_layers=24,
                  num_heads=16, relative_attention_num_buckets=32, relative_attention_max_distance=128,
                  feed_forward_proj="gated-gelu", dropout_rate=0.1, layer_norm_epsilon=1e-6,
                  tie_word_embeddings=False, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    dac_cfg = DACConfig(num_codebooks=9, model_bitrate=8, codebook_size=1024, latent_dim=1024, frame_rate=86,
                        sampling_rate=44100)
    dec = ParlerTTSDecoderConfig(vocab_size=1088, max_position_embeddings=4096, num_hidden_layers=24,
                                 ffn_dim=4096, num_attention_heads=16, num_key_value_heads=16,
                                 num_cross_attention_key_value_heads=16, hidden_size=1024, num_codebooks=9,
                                 pad_token_id=1024, bos_token_id=1025, eos_token_id=1024,
                                 activation_function="gelu", dropout=0.1, attention_dropout=0.0,
                                 activation_dropout=0.0, layerdrop=0.0, scale_embedding=False,
                                 tie_word_embeddings=False, rope_embeddings=False)
    cfg = ParlerTTSConfig.from_sub_models_config(t5, dac_cfg, dec, vocab_size=32128, decoder_start_token_id=1025,
                                                 pad_token_id=1024, prompt_cross_attention=False)
    model = ParlerTTSForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        # Never end early, never emit a non-code: channel 0 of the final layer norm becomes a
        # constant ~1, and every head's rows from EOS (1024) up (1025..1087 are BOS and padding
        # rows a trained model never picks; parler_tts and our codec step drop every frame holding
        # one, which left random weights with ~60% of the frames) read it with weight -1000.
        norm = model.decoder.model.decoder.layer_norm
        norm.weight[0], norm.bias[0] = 0.01, 1.0
        for head in model.decoder.lm_heads:
            head.weight[PARLER_EOS:, 0] = -1000.0
    model.generation_config.update(do_sample=True, max_length=2580, min_new_tokens=10, decoder_start_token_id=1025,
                                   bos_token_id=1025, pad_token_id=1024, eos_token_id=1024, guidance_scale=1)
    model.save_pretrained(out, safe_serialization=True)
    single_file(out)
    if (out / "model.safetensors").exists():
        rename_weight_norm(out / "model.safetensors")


def blip_vocab():
    mb = fixture_module("make_blip")
    vocab = mb.build_vocab()
    i = 0
    while len(vocab) < 30522:  # bert-base-uncased's size; [DEC] must be 30522, [ENC] 30523
        w = f"word{i}"
        i += 1
        if w not in vocab:
            vocab.append(w)
    return vocab


def build_blip(out: Path) -> None:
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration
    torch.manual_seed(0)
    vocab = blip_vocab()
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True)
    tok.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    assert tok.convert_tokens_to_ids("[DEC]") == 30522 and len(tok) == 30524
    # Salesforce/blip-image-captioning-base config.json
    config = BlipConfig(
        text_config=dict(vocab_size=30524, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                         num_attention_heads=12, max_position_embeddings=512, bos_token_id=30522,
                         sep_token_id=102, pad_token_id=0, layer_norm_eps=1e-12, encoder_hidden_size=768,
                         hidden_act="gelu"),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=384, patch_size=16, layer_norm_eps=1e-5, hidden_act="gelu"),
        projection_dim=512, image_text_hidden_size=256)
    model = BlipForConditionalGeneration(config).eval()
    with torch.no_grad():
        head = model.text_decoder.cls.predictions
        head.bias[102] = -1000.0  # [SEP] never wins: every caption runs to the token cap
        if head.decoder.bias is not None and head.decoder.bias.data_ptr() != head.bias.data_ptr():
            head.decoder.bias[102] = -1000.0
    model.save_pretrained(out, safe_serialization=True)
    single_file(out)
    (out / "generation_config.json").unlink(missing_ok=True)  # the real repo has none
    tok.save_pretrained(out)
    for junk in ("processor_config.json", "chat_template.jinja"):
        (out / junk).unlink(missing_ok=True)
    (out / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "BlipImageProcessor", "processor_class": "BlipProcessor", "resample": 3,
        "rescale_factor": 1 / 255, "size": {"height": 384, "width": 384}}, indent=2))
    (out / "special_tokens_map.json").write_text(json.dumps({
        "additional_special_tokens": ["[ENC]"], "bos_token": "[DEC]", "cls_token": "[CLS]", "mask_token": "[MASK]",
        "pad_token": "[PAD]", "sep_token": "[SEP]", "unk_token": "[UNK]"}, indent=2))


def build_qwen(out: Path) -> None:
    import gguf
    import numpy as np
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM
    me = fixture_module("make_enhancer")
    hf = ROOT / "qwen2.5-0.5b-instruct-hf"
    shutil.rmtree(hf, ignore_errors=True)
    hf.mkdir(parents=True)
    me.save_tokenizer(me.train_qwen2_tokenizer(), hf)
    tok = AutoTokenizer.from_pretrained(str(hf))
    torch.manual_seed(0)
    # Qwen/Qwen2.5-0.5B-Instruct config.json
    config = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, rms_norm_eps=1e-6,
                         use_sliding_window=False, sliding_window=32768, max_window_layers=21,
                         tie_word_embeddings=True, hidden_act="silu", bos_token_id=151643, eos_token_id=151645)
    model = Qwen2ForCausalLM(config).eval()
    stops = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        for s in stops:
            emb[s].zero_()  # tied head: their logits are 0, far below the best of 151936 -> never picked
        # The rows past the (small, synthetic) tokenizer are padding, as Qwen2.5's 271 untrained rows
        # past 151665: zero. With the 0.02 init every logit is near 0, so top-p sampling still
        # mostly picks padding ids (the answer decodes to almost nothing: "�" in ours, "" in
        # transformers); the work is the same 64 steps. Scaling the real rows up instead makes the
        # tied random model repeat its last prompt token ("\n" x 64), which our binary rightly
        # rejects as "wrote no prompt".
        emb[len(tok):].zero_()
        # The GGUF is Q8_0; give transformers the same rounded weights.
        for _, p in model.named_parameters():
            if p.ndim == 2:
                a = p.numpy().astype(np.float32)
                q = gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0)
                p.copy_(torch.from_numpy(gguf.quants.dequantize(q, gguf.GGMLQuantizationType.Q8_0).reshape(a.shape)))
    model.generation_config.update(bos_token_id=151643, eos_token_id=stops, pad_token_id=stops[1], do_sample=True,
                                   temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05)
    model.save_pretrained(hf, safe_serialization=True)
    me.write_gguf(out / "qwen2.5-0.5b-instruct-q8_0.gguf", model, tok, "q8_0", "qwen2")
    # The same (already Q8_0-rounded) values stored as F32: our binary run on this file does the
    # arithmetic transformers does (f32 weights, f32 matmuls), so the two can be compared like for like.
    me.write_gguf(out / "qwen2.5-0.5b-instruct-f32.gguf", model, tok, "f32", "qwen2")


def whisper_languages():
    text = WHISPER_LANGS_RS.read_text().split("// Other names")[0]
    import re
    codes = re.findall(r'\("([a-z]+)", "', text)
    return [c for c in codes if c != "yue"]  # whisper-base knows 99 (yue came with large-v3)


def build_whisper(out: Path) -> None:
    import torch
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration
    mw = fixture_module("make_whisper")
    langs = whisper_languages()
    assert len(langs) == 99, len(langs)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[], show_progress=False)
    tok.train_from_iterator(mw.CORPUS, trainer)
    # Pad the BPE vocabulary to GPT-2's 50257 so every special token sits at its real id.
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    i = 0
    while len(vocab) < 50257:
        vocab[f"fill{i}"] = len(vocab)
        i += 1
    tok = Tokenizer.from_str(json.dumps(spec))
    specials = ["<|endoftext|>", "<|startoftranscript|>"] + [f"<|{c}|>" for c in langs] + [
        "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
    timestamps = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in timestamps])
    ids = {t: tok.token_to_id(t) for t in specials + timestamps}
    assert ids["<|endoftext|>"] == 50257 and ids["<|notimestamps|>"] == 50363 and ids["<|30.00|>"] == 51864
    tok.save(str(out / "tokenizer.json"))
    tok.model.save(str(out))
    (out / "added_tokens.json").write_text(json.dumps({t: ids[t] for t in specials + timestamps}, indent=2))
    eot = "<|endoftext|>"
    (out / "special_tokens_map.json").write_text(json.dumps({
        "additional_special_tokens": specials[1:], "bos_token": eot, "eos_token": eot, "pad_token": eot,
        "unk_token": eot}, indent=2))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "add_prefix_space": False, "bos_token": eot, "eos_token": eot, "pad_token": eot, "unk_token": eot,
        "clean_up_tokenization_spaces": True, "errors": "replace", "model_max_length": 1024,
        "processor_class": "WhisperProcessor", "tokenizer_class": "WhisperTokenizer"}, indent=2))
    (out / "normalizer.json").write_text(json.dumps({"colour": "color", "favourite": "favorite"}, indent=2))
    # openai/whisper-base config.json / generation_config.json
    suppress = [1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63, 90, 91, 92, 93, 359, 503,
                522, 542, 873, 893, 902, 918, 922, 931, 1350, 1853, 1982, 2460, 2627, 3246, 3253, 3268, 3536,
                3846, 3961, 4183, 4667, 6585, 6647, 7273, 9061, 9383, 10428, 10929, 11938, 12033, 12331,
                12562, 13793, 14157, 14635, 15265, 15618, 16553, 16604, 18362, 18956, 20075, 21675, 22520,
                26130, 26161, 26435, 28279, 29464, 31650, 32302, 32470, 36865, 42863, 47425, 49870, 50254,
                50258, 50358, 50359, 50360, 50361, 50362]
    cfg = WhisperConfig(vocab_size=51865, num_mel_bins=80, d_model=512, encoder_layers=6, encoder_attention_heads=8,
                        encoder_ffn_dim=2048, decoder_layers=6, decoder_attention_heads=8, decoder_ffn_dim=2048,
                        max_source_positions=1500, max_target_positions=448, pad_token_id=50257,
                        bos_token_id=50257, eos_token_id=50257, decoder_start_token_id=50258,
                        suppress_tokens=suppress, begin_suppress_tokens=[220, 50257],
                        activation_function="gelu", scale_embedding=False, dropout=0.0, attention_dropout=0.0,
                        activation_dropout=0.0, use_cache=True)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        # Real sinusoids for the encoder positions, as the checkpoints hold.
        n_ctx, ch = 1500, 512
        import numpy as np
        inc = np.log(10000) / (ch // 2 - 1)
        inv = torch.exp(-inc * torch.arange(ch // 2))
        t = torch.arange(n_ctx)[:, None] * inv[None, :]
        model.model.encoder.embed_positions.weight.copy_(torch.cat([t.sin(), t.cos()], dim=1))
        # Tied head: <|endoftext|>'s logit becomes 0, below the best of 51865 -> runs to the cap.
        model.model.decoder.embed_tokens.weight[50257].zero_()
    gen_fields = dict(
        begin_suppress_tokens=[220, 50257], suppress_tokens=suppress, bos_token_id=50257, eos_token_id=50257,
        pad_token_id=50257, decoder_start_token_id=50258, forced_decoder_ids=[[1, None], [2, 50359]],
        is_multilingual=True, lang_to_id={f"<|{c}|>": ids[f"<|{c}|>"] for c in langs},
        task_to_id={"transcribe": 50359, "translate": 50358}, max_initial_timestamp_index=50, max_length=448,
        no_timestamps_token_id=50363, prev_sot_token_id=50361, return_timestamps=False,
        alignment_heads=[[3, 1], [4, 2], [4, 3], [4, 7], [5, 1], [5, 2], [5, 4], [5, 6]])
    for k, v in gen_fields.items():
        setattr(model.generation_config, k, v)
    model.generation_config._from_model_config = False  # else transformers rebuilds it from config.json
    model.save_pretrained(out, safe_serialization=True)
    single_file(out)
    WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, hop_length=160, chunk_length=30,
                            n_fft=400).save_pretrained(out)


BUILDERS = {"musicgen-small": build_musicgen, "parler-tts-mini-v1": build_parler,
            "blip-image-captioning-base": build_blip, "qwen2.5-0.5b-instruct-gguf": build_qwen,
            "whisper-base": build_whisper}


def make_image(path: Path) -> None:
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(3)
    h, w = 480, 640
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 // (w - 1)), (y * 255 // (h - 1)), ((x // 40 + y // 40) % 2) * 200], -1)
    img = np.clip(base + rng.integers(-20, 21, size=base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img, "RGB").save(path)


# ----------------------------------------------------------------------------------------------
# Python timings (one fresh subprocess per model)
# ----------------------------------------------------------------------------------------------

def py_musicgen(d: Path, res: dict) -> None:
    import torch
    from transformers import EncodecFeatureExtractor, MusicgenForConditionalGeneration, MusicgenProcessor, T5Tokenizer
    t0 = time.perf_counter()
    model = MusicgenForConditionalGeneration.from_pretrained(d).eval()
    proc = MusicgenProcessor(feature_extractor=EncodecFeatureExtractor.from_pretrained(d),
                             tokenizer=T5Tokenizer.from_pretrained(d))
    t1 = time.perf_counter()
    captured = {}
    orig = model.audio_encoder.decode

    def spy(codes, *a, **kw):
        captured["codes"] = codes.clone()
        return orig(codes, *a, **kw)

    model.audio_encoder.decode = spy
    with torch.no_grad():
        inputs = proc(text=[MUSIC_PROMPT], return_tensors="pt")
        audio = model.generate(**inputs, do_sample=False, guidance_scale=3.0, max_new_tokens=MUSIC_STEPS)
    t2 = time.perf_counter()
    wav = audio[0, 0].float().numpy()
    import numpy as np
    np.save(d / "py_audio.npy", wav)
    res.update(load=t1 - t0, generate=t2 - t1, frames=int(captured["codes"].shape[-1]), samples=int(wav.shape[0]))


def py_parler(d: Path, res: dict) -> None:
    fixture_module("make_parler")  # its stubs for audiotools' import-time dependencies
    import torch
    from parler_tts import ParlerTTSForConditionalGeneration
    from transformers import AutoTokenizer
    t0 = time.perf_counter()
    model = ParlerTTSForConditionalGeneration.from_pretrained(d).eval()
    tok = AutoTokenizer.from_pretrained(d)
    t1 = time.perf_counter()
    torch.manual_seed(1)
    with torch.no_grad():
        desc = tok(TTS_VOICE, return_tensors="pt")
        prompt = tok(TTS_TEXT, return_tensors="pt")
        audio = model.generate(input_ids=desc.input_ids, attention_mask=desc.attention_mask,
                               prompt_input_ids=prompt.input_ids, prompt_attention_mask=prompt.attention_mask,
                               do_sample=True, temperature=1.0, top_k=50, max_length=TTS_MAX_LENGTH)
    t2 = time.perf_counter()
    res.update(load=t1 - t0, generate=t2 - t1, samples=int(audio.numel()), seconds=audio.numel() / 44100)


def py_blip(d: Path, res: dict) -> None:
    import torch
    from PIL import Image
    from transformers import BlipForConditionalGeneration, BlipProcessor
    t0 = time.perf_counter()
    model = BlipForConditionalGeneration.from_pretrained(d).eval()
    proc = BlipProcessor.from_pretrained(d)
    t1 = time.perf_counter()
    with torch.no_grad():
        image = Image.open(ROOT / "inputs" / "photo.png").convert("RGB")
        pv = proc(images=image, return_tensors="pt")["pixel_values"]
        out = model.generate(pixel_values=pv, max_new_tokens=TEXT_TOKENS, min_new_tokens=TEXT_TOKENS,
                             do_sample=False, num_beams=1)
        text = proc.tokenizer.decode(out[0], skip_special_tokens=True)
    t2 = time.perf_counter()
    res.update(load=t1 - t0, generate=t2 - t1, ids=out[0].tolist(), text=text, new_tokens=len(out[0]) - 1)


def py_qwen(d: Path, res: dict) -> None:
    import torch
    from transformers import AutoTokenizer, Qwen2ForCausalLM
    me = fixture_module("make_enhancer")
    hf = ROOT / "qwen2.5-0.5b-instruct-hf"
    t0 = time.perf_counter()
    model = Qwen2ForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(hf)
    t1 = time.perf_counter()
    torch.manual_seed(1)
    with torch.no_grad():
        messages = [{"role": "system", "content": me.SYSTEM_PROMPT}, {"role": "user", "content": ENHANCE_IDEA}]
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=0.7, top_p=0.9,
                             top_k=0, repetition_penalty=1.0, max_new_tokens=TEXT_TOKENS,
                             min_new_tokens=TEXT_TOKENS)
        answer = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    t2 = time.perf_counter()
    res.update(load=t1 - t0, generate=t2 - t1, prompt_tokens=int(ids.shape[1]),
               new_tokens=int(out.shape[1] - ids.shape[1]), text_chars=len(answer),
               new_ids=out[0, ids.shape[1]:].tolist()[:16])


def py_whisper(d: Path, res: dict) -> None:
    import numpy as np
    import torch
    import wave
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizer
    t0 = time.perf_counter()
    model = WhisperForConditionalGeneration.from_pretrained(d).eval()
    fe = WhisperFeatureExtractor.from_pretrained(d)
    tok = WhisperTokenizer.from_pretrained(d)
    t1 = time.perf_counter()
    with wave.open(str(FIX / "audio" / "speech.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    with torch.no_grad():
        feats = fe(pcm, sampling_rate=16000, return_tensors="pt").input_features
        # No min_new_tokens: <|endoftext|> is unreachable anyway, and our binary has no such rule.
        out = model.generate(feats, language="en", task="transcribe", return_timestamps=True,
                             max_new_tokens=TEXT_TOKENS)
        seq = out[0].tolist() if not isinstance(out, dict) else out["sequences"][0].tolist()
        text = tok.decode(seq, skip_special_tokens=True)
    t2 = time.perf_counter()
    res.update(load=t1 - t0, generate=t2 - t1, ids=seq, text=text,
               text_tokens=sum(1 for t in seq if t < 50257), tokens=len(seq))


PY = {"musicgen-small": py_musicgen, "parler-tts-mini-v1": py_parler, "blip-image-captioning-base": py_blip,
      "qwen2.5-0.5b-instruct-gguf": py_qwen, "whisper-base": py_whisper}


# ----------------------------------------------------------------------------------------------
# Our binary
# ----------------------------------------------------------------------------------------------

def ours_args(mid: str, d: Path, variant: str = "") -> list[str]:
    if mid == "musicgen-small":
        return ["--model", str(d), "--prompt", MUSIC_PROMPT, "--duration", str(MUSIC_SECONDS), "--seed", "1"]
    if mid == "parler-tts-mini-v1":
        return ["--model", str(d), "--prompt", TTS_TEXT, "--voice", TTS_VOICE, "--duration", str(TTS_SECONDS),
                "--seed", "1"]
    if mid == "blip-image-captioning-base":
        return ["--model", str(d), "--caption", str(ROOT / "inputs" / "photo.png"), "--max-tokens", str(TEXT_TOKENS)]
    if mid == "qwen2.5-0.5b-instruct-gguf":
        gguf_file = "qwen2.5-0.5b-instruct-f32.gguf" if variant == "f32" else "qwen2.5-0.5b-instruct-q8_0.gguf"
        return ["--kind", "enhance", "--enhancer", str(d / gguf_file), "--prompt",
                ENHANCE_IDEA, "--max-tokens", str(TEXT_TOKENS), "--seed", "1"]
    if mid == "whisper-base":
        return ["--model", str(d), "--audio", str(FIX / "audio" / "speech.wav"), "--language", "en",
                "--max-tokens", str(TEXT_TOKENS)]
    raise KeyError(mid)


def run_ours(mid: str, d: Path, run: int, variant: str = "") -> dict:
    out = ROOT / "ours_out" / f"{mid}{'-' + variant if variant else ''}-{run}"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PALLAIDIUM_HOME=str(ROOT / "home"), HF_HUB_OFFLINE="1")
    cmd = [str(BIN), "--headless", "--device", "cpu", "--json", "--out", str(out)] + ours_args(mid, d, variant)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    done, errors, steps = None, [], None
    for line in p.stdout.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("event") == "progress":
            steps = ev.get("step")
        if ev.get("event") == "done":
            done = ev
        elif ev.get("event") in ("failed", "error", "cancelled"):
            errors.append(ev)
    res = {"cmd": shlex.join(cmd), "rc": p.returncode, "wall": wall}
    if done is None:
        res["error"] = (json.dumps(errors) if errors else "") + "\n" + p.stderr[-3000:]
        return res
    t = done.get("timings", {})
    res.update(load=t.get("load"), generate=t.get("generate"), total=t.get("total"), peak=done.get("peak_bytes"),
               outputs=done.get("outputs", []), duration_s=done.get("duration_s"), steps=steps)
    return res


def read_wav(path: str):
    import numpy as np
    data = Path(path).read_bytes()
    pos, fmt, pcm = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt = body
        elif cid == b"data":
            pcm = np.frombuffer(body, dtype="<i2").astype(np.float32) / 32768.0
        pos += 8 + size + (size & 1)
    return pcm


def text_of(outputs: list[str]) -> str | None:
    for o in outputs:
        if o.endswith(".json"):
            car = json.loads(Path(o).read_text())
            if car.get("text") is not None:
                return car["text"]
    return None


def parity(mid: str, theirs: dict, ours: dict) -> str:
    import numpy as np
    if "error" in ours or "error" in theirs:
        return "n/a"
    if mid == "musicgen-small":
        wav = next((o for o in ours["outputs"] if o.endswith(".wav")), None)
        a, b = read_wav(wav), np.load(ROOT / "musicgen-small" / "py_audio.npy")
        n = min(len(a), len(b))
        diff = float(np.abs(a[:n] - np.clip(b[:n], -1, 1)).max())
        corr = float(np.corrcoef(a[:n], b[:n])[0, 1])
        ok = len(a) == len(b) and diff < 5e-3
        return f"{'yes' if ok else 'NO'} (audio {len(a)} vs {len(b)} samples, max |diff| {diff:.2e}, corr {corr:.5f})"
    if mid in ("blip-image-captioning-base", "whisper-base"):
        mine = text_of(ours["outputs"]) or ""
        strip = lambda s: "".join(s.split())  # noqa: E731  (segment joins differ only in spaces)
        ok = strip(mine) == strip(theirs["text"])
        detail = "" if ok else f" ours {mine[:80]!r} theirs {theirs['text'][:80]!r}"
        return f"{'yes' if ok else 'NO'} (text{' equal' if ok else ''}){detail}"
    return "n/a (sampling)"


# ----------------------------------------------------------------------------------------------

def fmt_s(x):
    return "-" if x is None else f"{x:.2f} s"


def fmt_b(x):
    return "-" if x is None else f"{x / 2**30:.2f} GiB"


WORK = {"musicgen-small": f"music {MUSIC_SECONDS:g} s ({MUSIC_STEPS} steps, CFG 3, greedy)",
        "parler-tts-mini-v1": f"tts {TTS_SECONDS:g} s ({TTS_MAX_LENGTH - 1} steps, sampling)",
        "blip-image-captioning-base": f"caption 640x480, {TEXT_TOKENS} tokens, greedy",
        "qwen2.5-0.5b-instruct-gguf": f"enhance, {TEXT_TOKENS} tokens, Q8_0, sampling",
        "whisper-base": f"stt speech.wav, {TEXT_TOKENS} tokens, greedy"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma list: musicgen,parler,blip,enhance,whisper")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--skip-python", action="store_true")
    ap.add_argument("--_build", dest="build_one")
    ap.add_argument("--_py", dest="py_one")
    args = ap.parse_args()

    if args.build_one:
        out = ROOT / args.build_one
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        BUILDERS[args.build_one](out)
        (out / ".complete").write_text("ok\n")
        return
    if args.py_one:
        res = {}
        PY[args.py_one](ROOT / args.py_one, res)
        res["peak"] = rss_bytes()
        print("RESULT " + json.dumps(res))
        return

    ids = [SHORT.get(x.strip(), x.strip()) for x in args.only.split(",") if x.strip()] or IDS
    (ROOT / "inputs").mkdir(parents=True, exist_ok=True)
    if not (ROOT / "inputs" / "photo.png").exists():
        make_image(ROOT / "inputs" / "photo.png")
    results_path = ROOT / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for mid in ids:
        py = PARLERPY if mid == "parler-tts-mini-v1" else FIXPY
        if args.rebuild or not (ROOT / mid / ".complete").exists():
            t0 = time.perf_counter()
            subprocess.run([py, __file__, "--_build", mid], check=True)
            size = sum(f.stat().st_size for f in (ROOT / mid).rglob("*") if f.is_file())
            print(f"built {mid} in {time.perf_counter() - t0:.0f} s ({size / 2**30:.2f} GiB)", flush=True)
    if args.build_only:
        return
    for mid in ids:
        py = PARLERPY if mid == "parler-tts-mini-v1" else FIXPY
        entry = results.get(mid, {})
        entry["uptime_before"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        if not args.skip_python or "theirs" not in entry:
            # The same number of runs as ours, each in a fresh process; the median is reported.
            theirs_runs = []
            for r in range(args.runs):
                p = subprocess.run([py, __file__, "--_py", mid], capture_output=True, text=True)
                line = next((l for l in p.stdout.splitlines() if l.startswith("RESULT ")), None)
                res = json.loads(line[7:]) if line else {"error": p.stderr[-3000:]}
                theirs_runs.append(res)
                print(mid, "theirs run", r, {k: v for k, v in res.items() if k not in ("ids",)}, flush=True)
                if "error" in res:
                    break
            entry["theirs_runs"] = theirs_runs
            good = [r for r in theirs_runs if "error" not in r]
            if good:
                entry["theirs"] = dict(good[-1])
                for k in ("load", "generate", "peak"):
                    if all(isinstance(r.get(k), (int, float)) for r in good):
                        entry["theirs"][k] = statistics.median(r[k] for r in good)
                entry["theirs"]["runs"] = len(good)
            else:
                entry["theirs"] = theirs_runs[-1]
        # Qwen: ours on the Q8_0 file (what users run) and on the F32 file (transformers' precision).
        for variant in (["", "f32"] if mid == "qwen2.5-0.5b-instruct-gguf" else [""]):
            key = "ours_" + variant if variant else "ours"
            runs = []
            for r in range(args.runs):
                res = run_ours(mid, ROOT / mid, r, variant)
                runs.append(res)
                print(mid, key, "run", r, {k: v for k, v in res.items() if k not in ("outputs", "cmd")}, flush=True)
                if "error" in res:
                    break
            entry[key + "_runs"] = runs
            ok = [r for r in runs if "error" not in r]
            if ok:
                entry[key] = {k: statistics.median(r[k] for r in ok) for k in ("load", "generate", "total", "peak")
                              if all(r.get(k) is not None for r in ok)}
                entry[key]["outputs"] = ok[-1]["outputs"]
                entry[key]["duration_s"] = ok[-1].get("duration_s")
                entry[key]["text"] = text_of(ok[-1]["outputs"])
                entry[key]["runs"] = len(ok)
            else:
                entry[key] = {"error": runs[-1]["error"]}
            entry[key.replace("ours", "cmd")] = runs[0]["cmd"]
        entry["parity"] = parity(mid, entry["theirs"], entry["ours"])
        entry["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        results[mid] = entry
        results_path.write_text(json.dumps(results, indent=1))
        print(mid, "parity:", entry["parity"], flush=True)

    print("\n| model | work | ours load | ours generate | ours peak | theirs load | theirs generate | theirs peak "
          "| generate ratio (theirs/ours) | parity |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mid in IDS:
        e = results.get(mid)
        if not e:
            continue
        o, t = e.get("ours", {}), e.get("theirs", {})
        if "error" in o:
            ours_cells = "FAILED | - | -"
        else:
            ours_cells = f"{fmt_s(o.get('load'))} | {fmt_s(o.get('generate'))} | {fmt_b(o.get('peak'))}"
        if "error" in t:
            theirs_cells = "FAILED | - | -"
        else:
            theirs_cells = f"{fmt_s(t.get('load'))} | {fmt_s(t.get('generate'))} | {fmt_b(t.get('peak'))}"
        ratio = (f"{t['generate'] / o['generate']:.2f}x" if o.get("generate") and t.get("generate") else "-")
        print(f"| {mid} | {WORK[mid]} | {ours_cells} | {theirs_cells} | {ratio} | {e.get('parity')} |")
        o = e.get("ours_f32")
        if o and "error" not in o:
            ratio = (f"{t['generate'] / o['generate']:.2f}x" if o.get("generate") and t.get("generate") else "-")
            print(f"| {mid} (ours: F32 GGUF) | {WORK[mid].replace('Q8_0', 'f32 both sides')} | {fmt_s(o.get('load'))} | "
                  f"{fmt_s(o.get('generate'))} | {fmt_b(o.get('peak'))} | {theirs_cells} | {ratio} | n/a (sampling) |")


if __name__ == "__main__":
    main()
