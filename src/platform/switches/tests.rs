use super::*;
use std::path::Path;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| {
        owned
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| OsString::from(v))
    }
}

/// A valid value of each kind.
fn sample(takes: Takes) -> &'static str {
    match takes {
        Takes::Flag => "1",
        Takes::Seconds => "5",
        Takes::Path => "/tmp/x",
        Takes::Text => "x",
        Takes::OneOf(words) => words[0],
    }
}

#[test]
fn unset_or_empty_is_the_default() {
    assert_eq!(Switches::parse(env(&[])).unwrap(), Switches::default());
    let empty: Vec<(&str, &str)> = SWITCHES.iter().map(|s| (s.name, " ")).collect();
    assert_eq!(Switches::parse(env(&empty)).unwrap(), Switches::default());
}

#[test]
fn values_are_typed() {
    let s = Switches::parse(env(&[
        ("PALLAIDIUM_HOME", "/data/p"),
        ("PALLAIDIUM_CONNECT_TIMEOUT", "2.5"),
        ("PALLAIDIUM_STOCK_KERNELS", "true"),
        ("PALLAIDIUM_PROFILE", "0"),
        ("PALLAIDIUM_PREVIEW_PROTOCOL", "Kitty"),
        ("PALLAIDIUM_GGUF_MATMUL", " Dequant "),
    ]))
    .unwrap();
    assert_eq!(s.home.as_deref(), Some(Path::new("/data/p")));
    assert_eq!(s.connect_timeout, Some(Duration::from_millis(2500)));
    assert!(s.stock_kernels && !s.profile);
    assert_eq!(s.preview_protocol.as_deref(), Some("kitty"));
    assert_eq!(s.gguf_matmul.as_deref(), Some("dequant"));
    assert!(s.recorded().contains_key("PALLAIDIUM_GGUF_MATMUL"));
}

#[test]
fn a_malformed_value_names_the_variable_and_what_it_takes() {
    for (name, value, takes) in [
        ("PALLAIDIUM_STOCK_KERNELS", "yes", "1 (on) or 0 (off)"),
        ("PALLAIDIUM_READ_TIMEOUT", "-3", "seconds"),
        ("PALLAIDIUM_CONNECT_TIMEOUT", "inf", "seconds"),
        ("PALLAIDIUM_PREVIEW_PROTOCOL", "png", "one of auto, kitty"),
        (
            "PALLAIDIUM_GGUF_MATMUL",
            "q8",
            "one of quantized, repacked, dequant",
        ),
    ] {
        let err = Switches::parse(env(&[(name, value)])).unwrap_err();
        assert!(matches!(err, Error::BadInput { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(name) && text.contains(takes), "{text}");
    }
}

#[test]
fn the_parser_reads_every_table_entry_once_with_its_kind() {
    let get = env(&[]);
    let reader = Reader::new(&get);
    Switches::parse_logged(&reader).unwrap();
    let read = reader.read.into_inner();
    let table: Vec<_> = SWITCHES.iter().map(|s| (s.name, s.takes)).collect();
    assert_eq!(read, table);
}

#[test]
fn every_switch_set_shows_up_once() {
    let all: Vec<(&str, &str)> = SWITCHES.iter().map(|s| (s.name, sample(s.takes))).collect();
    let s = Switches::parse(env(&all)).unwrap();
    let names: Vec<_> = s.set().into_iter().map(|(n, _)| n).collect();
    let table: Vec<_> = SWITCHES.iter().map(|s| s.name).collect();
    assert_eq!(names, table);
}

#[test]
fn only_set_switches_that_change_results_or_speed_are_recorded() {
    assert!(Switches::default().recorded().is_empty());
    let s = Switches {
        stock_kernels: true,
        profile: true,
        home: Some("/tmp/x".into()),
        log: Some("debug".into()),
        ..Switches::default()
    };
    let got: Vec<_> = s.recorded().into_iter().collect();
    assert_eq!(
        got,
        [
            ("PALLAIDIUM_PROFILE".to_owned(), "1".to_owned()),
            ("PALLAIDIUM_STOCK_KERNELS".to_owned(), "1".to_owned())
        ]
    );
}

#[test]
fn annotate_adds_the_key_only_when_something_is_set() {
    let spec = serde_json::json!({"prompt": "a"});
    assert_eq!(annotate(spec.clone(), &BTreeMap::new()), spec);
    let set = BTreeMap::from([("PALLAIDIUM_STOCK_KERNELS".to_owned(), "1".to_owned())]);
    let v = annotate(spec, &set);
    assert_eq!(v["prompt"], "a");
    assert_eq!(v[METADATA_KEY]["PALLAIDIUM_STOCK_KERNELS"], "1");
}

/// Every `PALLAIDIUM_*` name in src/.
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

/// Every `std::env::var*` read of a `PALLAIDIUM_*` name outside this module (there must be none).
fn reads_outside(dir: &Path, found: &mut Vec<String>) {
    let re = regex::Regex::new(r#"env::var(_os)?\(\s*"PALLAIDIUM_"#).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            reads_outside(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs")
            && !path.to_string_lossy().contains("switches")
        {
            let text = std::fs::read_to_string(&path).unwrap();
            if re.is_match(&text) {
                found.push(path.display().to_string());
            }
        }
    }
}

#[test]
fn every_variable_the_source_names_is_listed_here_and_in_the_readme() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = std::collections::BTreeSet::new();
    names_in(&root.join("src"), &mut found);
    found.remove("PALLAIDIUM_NOT_A_SWITCH");
    let known: Vec<_> = SWITCHES.iter().map(|s| s.name).collect();
    let unknown: Vec<_> = found
        .iter()
        .filter(|n| !known.contains(&n.as_str()))
        .collect();
    assert!(unknown.is_empty(), "add to SWITCHES: {unknown:?}");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let missing: Vec<_> = known.iter().filter(|n| !readme.contains(*n)).collect();
    assert!(missing.is_empty(), "README does not list {missing:?}");
    let mut reads = Vec::new();
    reads_outside(&root.join("src"), &mut reads);
    assert!(
        reads.is_empty(),
        "read PALLAIDIUM_* through Switches: {reads:?}"
    );
}
