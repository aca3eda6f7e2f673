//! Every `PALLAIDIUM_*` environment variable the program reads: what it does, whether it can
//! change what a job or benchmark produces, and which are set now. The set ones that change
//! results or speed are recorded in every bench JSON and in an output's JSON metadata, so a
//! number or an image made with a measurement switch is never mistaken for a default one.

use std::collections::BTreeMap;

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

/// One environment variable.
#[derive(Debug, Clone, Copy)]
pub struct Switch {
    pub name: &'static str,
    pub effect: Effect,
    pub what: &'static str,
}

/// All of them (README's environment paragraph lists the same; a unit test checks both against
/// the source).
pub const SWITCHES: &[Switch] = &[
    Switch {
        name: "PALLAIDIUM_HOME",
        effect: Effect::Setting,
        what: "queue database, logs and outputs",
    },
    Switch {
        name: "PALLAIDIUM_LOG",
        effect: Effect::Setting,
        what: "an EnvFilter for the log (overrides --log-level)",
    },
    Switch {
        name: "PALLAIDIUM_PREVIEW_PROTOCOL",
        effect: Effect::Setting,
        what: "the default of --preview-protocol",
    },
    Switch {
        name: "PALLAIDIUM_CONNECT_TIMEOUT",
        effect: Effect::Setting,
        what: "seconds a download waits to connect (default 10)",
    },
    Switch {
        name: "PALLAIDIUM_READ_TIMEOUT",
        effect: Effect::Setting,
        what: "seconds a download waits for the next bytes of an answer (default 30)",
    },
    Switch {
        name: "PALLAIDIUM_TEST_FAULT",
        effect: Effect::Results,
        what: "test suite only: injects panics into named jobs; never set it",
    },
    Switch {
        name: "PALLAIDIUM_STOCK_KERNELS",
        effect: Effect::Results,
        what: "1: candle's own layers instead of ours (rounding differs)",
    },
    Switch {
        name: "PALLAIDIUM_SCALAR_ATTENTION",
        effect: Effect::Results,
        what: "1: the CUDA attention without tensor cores (rounding differs)",
    },
    Switch {
        name: "PALLAIDIUM_ATTENTION_V1",
        effect: Effect::Results,
        what: "1: the older tensor-core CUDA attention (rounding may differ)",
    },
    Switch {
        name: "PALLAIDIUM_COL_BUDGET_MB",
        effect: Effect::Results,
        what: "a smaller CUDA im2col workspace: other GEMM shapes (rounding may differ)",
    },
    Switch {
        name: "PALLAIDIUM_IM2COL_V1",
        effect: Effect::Speed,
        what: "1: the untiled CUDA im2col (the same columns)",
    },
    Switch {
        name: "PALLAIDIUM_COPY_WEIGHTS",
        effect: Effect::Speed,
        what: "1: copy weights instead of mapping them (CPU) or staging them (CUDA); same values",
    },
    Switch {
        name: "PALLAIDIUM_MALLOC_DEFAULTS",
        effect: Effect::Speed,
        what: "1: leave glibc's allocator settings as they are",
    },
    Switch {
        name: "PALLAIDIUM_CUDA_DEFAULTS",
        effect: Effect::Speed,
        what: "1: keep cudarc's memory pool and event tracking settings",
    },
    Switch {
        name: "PALLAIDIUM_PROFILE",
        effect: Effect::Speed,
        what: "1: time each UNet layer kind (synchronizes, so steps are slower)",
    },
];

/// The recorded switches (results or speed) that are set, by name, from `get`.
pub fn set_in(get: impl Fn(&str) -> Option<String>) -> BTreeMap<String, String> {
    SWITCHES
        .iter()
        .filter(|s| s.effect != Effect::Setting)
        .filter_map(|s| get(s.name).map(|v| (s.name.to_owned(), v)))
        .collect()
}

/// The recorded switches set in this process's environment.
pub fn set_now() -> BTreeMap<String, String> {
    set_in(|name| std::env::var(name).ok())
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
mod tests {
    use super::*;
    use std::path::Path;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            owned
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn only_set_switches_that_change_results_or_speed_are_recorded() {
        assert!(set_in(env(&[])).is_empty());
        let got = set_in(env(&[
            ("PALLAIDIUM_STOCK_KERNELS", "1"),
            ("PALLAIDIUM_COL_BUDGET_MB", "48"),
            ("PALLAIDIUM_HOME", "/tmp/x"),
            ("PALLAIDIUM_LOG", "debug"),
            ("PALLAIDIUM_NOT_A_SWITCH", "1"),
        ]));
        let names: Vec<_> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            names,
            [
                ("PALLAIDIUM_COL_BUDGET_MB", "48"),
                ("PALLAIDIUM_STOCK_KERNELS", "1")
            ]
        );
    }

    #[test]
    fn annotate_adds_the_key_only_when_something_is_set() {
        let spec = serde_json::json!({"prompt": "a"});
        assert_eq!(annotate(spec.clone(), &BTreeMap::new()), spec);
        let set = BTreeMap::from([("PALLAIDIUM_SCALAR_ATTENTION".to_owned(), "1".to_owned())]);
        let v = annotate(spec, &set);
        assert_eq!(v["prompt"], "a");
        assert_eq!(v[METADATA_KEY]["PALLAIDIUM_SCALAR_ATTENTION"], "1");
    }

    /// Every `PALLAIDIUM_*` name in src/ is a known switch, and README lists each one.
    fn names_in(dir: &Path, found: &mut std::collections::BTreeSet<String>) {
        let re = regex::Regex::new(r"PALLAIDIUM_[A-Z0-9_]*[A-Z0-9]").unwrap();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                names_in(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                found.extend(re.find_iter(&text).map(|m| m.as_str().to_owned()));
            }
        }
    }

    #[test]
    fn every_variable_the_source_names_is_listed_here_and_in_the_readme() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut found = std::collections::BTreeSet::new();
        names_in(&root.join("src"), &mut found);
        found.remove("PALLAIDIUM_NOT_A_SWITCH"); // this file's own test input
        let known: Vec<_> = SWITCHES.iter().map(|s| s.name).collect();
        let unknown: Vec<_> = found
            .iter()
            .filter(|n| !known.contains(&n.as_str()))
            .collect();
        assert!(unknown.is_empty(), "add to SWITCHES: {unknown:?}");
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let missing: Vec<_> = known.iter().filter(|n| !readme.contains(*n)).collect();
        assert!(missing.is_empty(), "README does not list {missing:?}");
    }
}
