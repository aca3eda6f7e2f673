//! The table of every `PALLAIDIUM_*` variable: what it takes, what it does and whether it can
//! change what a job or benchmark produces (README's environment paragraph lists the same; a
//! unit test checks both against the source and against what `Switches::parse` reads).

/// What setting a variable can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// The numbers computed (other kernels or another order of arithmetic): recorded.
    Results,
    /// Only time or memory; the values computed are the same: recorded.
    Speed,
    /// Where files go, what is logged or shown: not recorded.
    Setting,
}

/// The kind of value a variable takes (the one parsing rule of each, `Switches::parse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// `1` (or `true`) on, `0` (or `false`) off.
    Flag,
    /// Seconds, more than 0 and at most a day.
    Seconds,
    /// A folder.
    Path,
    /// Any text (checked where it is used, e.g. the log filter).
    Text,
    /// One of these words.
    OneOf(&'static [&'static str]),
}

/// One environment variable.
#[derive(Debug, Clone, Copy)]
pub struct Switch {
    pub name: &'static str,
    pub effect: Effect,
    pub takes: Takes,
    pub what: &'static str,
}

/// The words `PALLAIDIUM_PREVIEW_PROTOCOL` takes (`tui::preview::PreviewProtocol` parses each).
pub const PREVIEW_PROTOCOLS: &[&str] = &[
    "auto",
    "kitty",
    "iterm",
    "iterm2",
    "sixel",
    "halfblocks",
    "none",
    "off",
];

/// The words `PALLAIDIUM_GGUF_MATMUL` takes (`engines::flux::transformer::GgufMatmul` parses
/// each).
pub const GGUF_MATMUL_MODES: &[&str] = &["quantized", "repacked", "dequant"];

/// The words `PALLAIDIUM_CONV` takes.
pub const CONV_MODES: &[&str] = &["cudnn", "gemm"];

/// All of them.
pub const SWITCHES: &[Switch] = &[
    Switch {
        name: "PALLAIDIUM_HOME",
        effect: Effect::Setting,
        takes: Takes::Path,
        what: "queue database, logs and outputs",
    },
    Switch {
        name: "PALLAIDIUM_LORA_DIR",
        effect: Effect::Setting,
        takes: Takes::Path,
        what: "the TUI LoRA picker's folder when config.toml's [loras] dir names none",
    },
    Switch {
        name: "PALLAIDIUM_LOG",
        effect: Effect::Setting,
        takes: Takes::Text,
        what: "an EnvFilter for the log (overrides --log-level)",
    },
    Switch {
        name: "PALLAIDIUM_PREVIEW_PROTOCOL",
        effect: Effect::Setting,
        takes: Takes::OneOf(PREVIEW_PROTOCOLS),
        what: "the default of --preview-protocol",
    },
    Switch {
        name: "PALLAIDIUM_CONNECT_TIMEOUT",
        effect: Effect::Setting,
        takes: Takes::Seconds,
        what: "seconds a download waits to connect (default 10)",
    },
    Switch {
        name: "PALLAIDIUM_READ_TIMEOUT",
        effect: Effect::Setting,
        takes: Takes::Seconds,
        what: "seconds a download waits for the next bytes of an answer (default 30)",
    },
    Switch {
        name: "PALLAIDIUM_TEST_FAULT",
        effect: Effect::Results,
        takes: Takes::Text,
        what: "test suite only: injects panics into named jobs; never set it",
    },
    Switch {
        name: "PALLAIDIUM_TEST_POSTGRES",
        effect: Effect::Setting,
        takes: Takes::Text,
        what: "test suite only: a postgres:// URL where the queue tests may create schemas",
    },
    Switch {
        name: "PALLAIDIUM_STOCK_KERNELS",
        effect: Effect::Results,
        takes: Takes::Flag,
        what: "1: candle's own layers instead of ours (rounding differs)",
    },
    Switch {
        name: "PALLAIDIUM_COPY_WEIGHTS",
        effect: Effect::Speed,
        takes: Takes::Flag,
        what: "1: copy weights instead of mapping them (CPU) or staging them (CUDA); same values",
    },
    Switch {
        name: "PALLAIDIUM_MALLOC_DEFAULTS",
        effect: Effect::Speed,
        takes: Takes::Flag,
        what: "1: leave glibc's allocator settings as they are",
    },
    Switch {
        name: "PALLAIDIUM_CUDA_DEFAULTS",
        effect: Effect::Speed,
        takes: Takes::Flag,
        what: "1: keep cudarc's memory pool and event tracking settings",
    },
    Switch {
        name: "PALLAIDIUM_PROFILE",
        effect: Effect::Speed,
        takes: Takes::Flag,
        what: "1: time each UNet layer kind (synchronizes, so steps are slower)",
    },
    Switch {
        name: "PALLAIDIUM_GGUF_MATMUL",
        effect: Effect::Results,
        takes: Takes::OneOf(GGUF_MATMUL_MODES),
        what: "how the CPU multiplies a diffusion transformer's quantized GGUF matrices: \
               quantized (8-bit activations, integer dot products on the stored blocks), \
               repacked (the same on tiles candle repacks and keeps beside them: faster, \
               about twice the memory) or dequant (diffusers' arithmetic, per call)",
    },
    Switch {
        name: "PALLAIDIUM_CONV",
        effect: Effect::Results,
        takes: Takes::OneOf(CONV_MODES),
        what: "how CUDA runs kxk convolutions: cudnn (the default in builds with the cudnn \
               feature; tensor cores, cuDNN's heuristics) or gemm (our im2col + cuBLAS GEMM, \
               the default otherwise)",
    },
];

/// The table entry of `name` (every name `Switches::parse` reads has one; a test checks it).
pub fn switch(name: &str) -> Option<&'static Switch> {
    SWITCHES.iter().find(|s| s.name == name)
}
