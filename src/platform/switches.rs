//! Every `PALLAIDIUM_*` environment variable, read once at start (`Switches::from_env`, in
//! `main`) into one typed struct that is passed to what needs it; nothing else reads them. A
//! malformed value is bad input naming the variable and what it takes (exit 2). The set ones
//! that change results or speed are recorded in every bench JSON and in an output's JSON
//! metadata, so a number or an image made with a measurement switch is never mistaken for a
//! default one.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::{Error, Result};

mod table;
pub use table::{
    CONV_MODES, Effect, GGUF_MATMUL_MODES, PREVIEW_PROTOCOLS, SWITCHES, Switch, Takes, switch,
};

/// The switches of this run. `Default` is every variable unset (what tests construct).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Switches {
    /// PALLAIDIUM_HOME: the data folder (queue, logs, outputs).
    pub home: Option<PathBuf>,
    /// PALLAIDIUM_LORA_DIR: the TUI's LoRA folder when config.toml's `[loras] dir` does not name one.
    pub lora_dir: Option<PathBuf>,
    /// PALLAIDIUM_LOG: an EnvFilter that overrides `--log-level` (checked by `logging`).
    pub log: Option<String>,
    /// PALLAIDIUM_PREVIEW_PROTOCOL: the default of `--preview-protocol` (lowercase).
    pub preview_protocol: Option<String>,
    /// PALLAIDIUM_CONNECT_TIMEOUT: how long a download waits to connect.
    pub connect_timeout: Option<Duration>,
    /// PALLAIDIUM_READ_TIMEOUT: how long a download waits for the next bytes of an answer.
    pub read_timeout: Option<Duration>,
    /// PALLAIDIUM_TEST_FAULT: the test suite's fault hook (`jobs::run::fault`).
    pub test_fault: Option<String>,
    /// PALLAIDIUM_TEST_POSTGRES: the PostgreSQL server the queue tests use
    /// (`jobs::store::pg::test_env`).
    pub test_postgres: Option<String>,
    /// PALLAIDIUM_STOCK_KERNELS: candle's own layers instead of ours.
    pub stock_kernels: bool,
    /// PALLAIDIUM_COPY_WEIGHTS: copy weights instead of mapping (CPU) or staging (CUDA) them.
    pub copy_weights: bool,
    /// PALLAIDIUM_MALLOC_DEFAULTS: leave glibc's allocator settings alone.
    pub malloc_defaults: bool,
    /// PALLAIDIUM_CUDA_DEFAULTS: keep cudarc's memory pool and event tracking settings.
    pub cuda_defaults: bool,
    /// PALLAIDIUM_PROFILE: time each kind of UNet layer.
    pub profile: bool,
    /// PALLAIDIUM_GGUF_MATMUL: one of `GGUF_MATMUL_MODES` (lowercase); unset, the engine's
    /// default per device.
    pub gguf_matmul: Option<String>,
    /// PALLAIDIUM_CONV: one of `CONV_MODES`; unset, cudnn where built in.
    pub conv: Option<String>,
}

impl Switches {
    /// From this process's environment (once, in `main`).
    pub fn from_env() -> Result<Self> {
        Self::parse(|name| std::env::var_os(name))
    }

    /// From `get` (a variable's value by name): unset or empty is unset; anything else must be
    /// what the variable takes.
    pub fn parse(get: impl Fn(&str) -> Option<OsString>) -> Result<Self> {
        Self::parse_logged(&Reader::new(&get))
    }

    fn parse_logged(r: &Reader<'_>) -> Result<Self> {
        Ok(Self {
            home: r.path("PALLAIDIUM_HOME")?,
            lora_dir: r.path("PALLAIDIUM_LORA_DIR")?,
            log: r.text("PALLAIDIUM_LOG")?,
            preview_protocol: r.one_of("PALLAIDIUM_PREVIEW_PROTOCOL", PREVIEW_PROTOCOLS)?,
            connect_timeout: r.seconds("PALLAIDIUM_CONNECT_TIMEOUT")?,
            read_timeout: r.seconds("PALLAIDIUM_READ_TIMEOUT")?,
            test_fault: r.text("PALLAIDIUM_TEST_FAULT")?,
            test_postgres: r.text("PALLAIDIUM_TEST_POSTGRES")?,
            stock_kernels: r.flag("PALLAIDIUM_STOCK_KERNELS")?,
            copy_weights: r.flag("PALLAIDIUM_COPY_WEIGHTS")?,
            malloc_defaults: r.flag("PALLAIDIUM_MALLOC_DEFAULTS")?,
            cuda_defaults: r.flag("PALLAIDIUM_CUDA_DEFAULTS")?,
            profile: r.flag("PALLAIDIUM_PROFILE")?,
            gguf_matmul: r.one_of("PALLAIDIUM_GGUF_MATMUL", GGUF_MATMUL_MODES)?,
            conv: r.one_of("PALLAIDIUM_CONV", CONV_MODES)?,
        })
    }

    /// Every set variable with its value as parsed (flags as `1`), in the table's order.
    pub fn set(&self) -> Vec<(&'static str, String)> {
        let flag = |on: bool| on.then(|| "1".to_owned());
        let seconds = |d: Option<Duration>| d.map(|d| d.as_secs_f64().to_string());
        [
            (
                "PALLAIDIUM_HOME",
                self.home.as_ref().map(|p| p.display().to_string()),
            ),
            (
                "PALLAIDIUM_LORA_DIR",
                self.lora_dir.as_ref().map(|p| p.display().to_string()),
            ),
            ("PALLAIDIUM_LOG", self.log.clone()),
            ("PALLAIDIUM_PREVIEW_PROTOCOL", self.preview_protocol.clone()),
            ("PALLAIDIUM_CONNECT_TIMEOUT", seconds(self.connect_timeout)),
            ("PALLAIDIUM_READ_TIMEOUT", seconds(self.read_timeout)),
            ("PALLAIDIUM_TEST_FAULT", self.test_fault.clone()),
            // Its password is nobody's business in a log.
            (
                "PALLAIDIUM_TEST_POSTGRES",
                self.test_postgres.as_ref().map(|_| "(set)".to_owned()),
            ),
            ("PALLAIDIUM_STOCK_KERNELS", flag(self.stock_kernels)),
            ("PALLAIDIUM_COPY_WEIGHTS", flag(self.copy_weights)),
            ("PALLAIDIUM_MALLOC_DEFAULTS", flag(self.malloc_defaults)),
            ("PALLAIDIUM_CUDA_DEFAULTS", flag(self.cuda_defaults)),
            ("PALLAIDIUM_PROFILE", flag(self.profile)),
            ("PALLAIDIUM_GGUF_MATMUL", self.gguf_matmul.clone()),
            ("PALLAIDIUM_CONV", self.conv.clone()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect()
    }

    /// The set switches that can change results or speed, by name: what bench JSON and output
    /// metadata record.
    pub fn recorded(&self) -> BTreeMap<String, String> {
        self.set()
            .into_iter()
            .filter(|(name, _)| switch(name).is_some_and(|s| s.effect != Effect::Setting))
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }

    /// One info line at start naming every set switch (or none).
    pub fn log_at_start(&self) {
        let set = self.set();
        if set.is_empty() {
            tracing::info!("no PALLAIDIUM_* switches set");
            return;
        }
        let shown: Vec<String> = set.iter().map(|(n, v)| format!("{n}={v}")).collect();
        tracing::info!(switches = %shown.join(" "), recorded = !self.recorded().is_empty(), "PALLAIDIUM_* switches set");
    }
}

/// The one parsing rule per kind of value; an error names the variable and what it takes.
struct Reader<'a> {
    get: &'a dyn Fn(&str) -> Option<OsString>,
    /// What was read, for the test that checks the parser against the table.
    read: RefCell<Vec<(&'static str, Takes)>>,
}

impl<'a> Reader<'a> {
    fn new(get: &'a dyn Fn(&str) -> Option<OsString>) -> Self {
        Self {
            get,
            read: RefCell::new(Vec::new()),
        }
    }

    fn raw(&self, name: &'static str, takes: Takes) -> Option<OsString> {
        self.read.borrow_mut().push((name, takes));
        (self.get)(name).filter(|v| !v.to_string_lossy().trim().is_empty())
    }

    fn string(&self, name: &'static str, takes: Takes) -> Result<Option<String>> {
        match self.raw(name, takes) {
            None => Ok(None),
            Some(v) => match v.into_string() {
                Ok(s) => Ok(Some(s.trim().to_owned())),
                Err(v) => Err(bad(name, &v.to_string_lossy(), takes)),
            },
        }
    }

    fn path(&self, name: &'static str) -> Result<Option<PathBuf>> {
        Ok(self.raw(name, Takes::Path).map(PathBuf::from))
    }

    fn text(&self, name: &'static str) -> Result<Option<String>> {
        self.string(name, Takes::Text)
    }

    fn one_of(&self, name: &'static str, words: &'static [&'static str]) -> Result<Option<String>> {
        let takes = Takes::OneOf(words);
        match self.string(name, takes)? {
            None => Ok(None),
            Some(v) if words.contains(&v.to_ascii_lowercase().as_str()) => {
                Ok(Some(v.to_ascii_lowercase()))
            }
            Some(v) => Err(bad(name, &v, takes)),
        }
    }

    fn seconds(&self, name: &'static str) -> Result<Option<Duration>> {
        let Some(v) = self.string(name, Takes::Seconds)? else {
            return Ok(None);
        };
        match v.parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => {
                Ok(Some(Duration::from_secs_f64(s)))
            }
            _ => Err(bad(name, &v, Takes::Seconds)),
        }
    }

    fn flag(&self, name: &'static str) -> Result<bool> {
        match self.string(name, Takes::Flag)? {
            None => Ok(false),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" => Ok(true),
                "0" | "false" => Ok(false),
                _ => Err(bad(name, &v, Takes::Flag)),
            },
        }
    }
}

fn bad(name: &str, value: &str, takes: Takes) -> Error {
    let what = match takes {
        Takes::Flag => format!("takes 1 (on) or 0 (off), e.g. {name}=1"),
        Takes::Seconds => {
            format!("takes seconds, more than 0 and at most 86400, e.g. {name}=30")
        }
        Takes::Path => "takes a folder".to_owned(),
        Takes::Text => "takes text (UTF-8)".to_owned(),
        Takes::OneOf(words) => format!("takes one of {}", words.join(", ")),
    };
    Error::bad_input(format!("{name}={value:?}: {what} (or unset it)"))
}

/// Key of the switches in an output's JSON metadata (`info --json` shows it when present).
pub const METADATA_KEY: &str = "env_switches";

/// `spec` (a JSON object) with `switches` added under `METADATA_KEY` when there are any.
pub fn annotate(
    mut spec: serde_json::Value,
    switches: &BTreeMap<String, String>,
) -> serde_json::Value {
    if let (serde_json::Value::Object(map), false) = (&mut spec, switches.is_empty()) {
        map.insert(METADATA_KEY.to_owned(), serde_json::json!(switches));
    }
    spec
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
