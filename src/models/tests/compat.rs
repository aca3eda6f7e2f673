use crate::models::compat::{CompatContext, Severity, Verdict, check, verdict};
use crate::models::entry::{Family, ModelEntry, Os};
use crate::models::registry::Registry;
use crate::vocab::{Backend, Dtype};

fn entry(id: &str) -> ModelEntry {
    Registry::shipped().unwrap().get(id).unwrap().clone()
}

fn ctx(backend: Backend, dtype: Dtype) -> CompatContext {
    let mut c = CompatContext::new(backend, dtype);
    c.os = Os::Linux;
    c
}

fn messages(f: &[crate::models::CompatFinding]) -> String {
    f.iter()
        .map(|f| format!("{:?}: {} / {}", f.severity, f.message, f.fix))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn plain_cpu_f32_sd15_is_ok() {
    let f = check(&ctx(Backend::Cpu, Dtype::F32), Some(&entry("sd15")));
    assert!(f.is_empty(), "{}", messages(&f));
    assert_eq!(verdict(&f), Verdict::Ok);
}

#[test]
fn size_not_a_multiple_of_8_is_an_error_with_a_fix() {
    let mut c = ctx(Backend::Cpu, Dtype::F32);
    c.width = Some(510);
    let f = check(&c, Some(&entry("sd15")));
    assert_eq!(verdict(&f), Verdict::Error);
    assert!(f[0].message.contains("multiples of 8"), "{}", messages(&f));
    assert!(
        f[0].fix.contains("--width 512 --height 512"),
        "{}",
        messages(&f)
    );
}

#[test]
fn far_from_native_resolution_warns() {
    let mut c = ctx(Backend::Cpu, Dtype::F32);
    (c.width, c.height) = (Some(256), Some(256));
    let f = check(&c, Some(&entry("sdxl")));
    assert_eq!(verdict(&f), Verdict::Warn, "{}", messages(&f));
    assert!(f[0].message.contains("native 1024x1024"));
    // 2x the pixels is still fine, more is not.
    (c.width, c.height) = (Some(1024), Some(512));
    assert!(check(&c, Some(&entry("sd15"))).is_empty());
    (c.width, c.height) = (Some(1024), Some(1024));
    assert_eq!(verdict(&check(&c, Some(&entry("sd15")))), Verdict::Warn);
}

#[test]
fn bf16_on_m1_or_old_macos_is_an_error() {
    let mut c = ctx(Backend::Metal, Dtype::Bf16);
    c.os = Os::Macos;
    c.macos_version = Some("14.5".to_owned());
    c.chip = Some("Apple M1 Pro".to_owned());
    let f = check(&c, Some(&entry("sd-turbo")));
    assert_eq!(verdict(&f), Verdict::Error, "{}", messages(&f));
    assert!(f[0].message.contains("Apple M1 Pro"));

    c.chip = Some("Apple M2".to_owned());
    c.macos_version = Some("13.6.1".to_owned());
    let f = check(&c, Some(&entry("sd-turbo")));
    assert_eq!(verdict(&f), Verdict::Error);
    assert!(f[0].message.contains("macOS 14"), "{}", messages(&f));

    c.macos_version = Some("14.0".to_owned());
    assert_eq!(verdict(&check(&c, Some(&entry("sd-turbo")))), Verdict::Ok);
    // Not on Metal: no bf16 rule.
    let mut cpu = c.clone();
    cpu.backend = Backend::Cpu;
    cpu.chip = Some("Apple M1".to_owned());
    assert_eq!(verdict(&check(&cpu, Some(&entry("sd-turbo")))), Verdict::Ok);
}

#[test]
fn registry_rule_bf16_metal_washes_out() {
    let mut c = ctx(Backend::Metal, Dtype::Bf16);
    c.os = Os::Macos;
    c.macos_version = Some("15.1".to_owned());
    c.chip = Some("Apple M4".to_owned());
    let f = check(&c, Some(&entry("sd15")));
    assert_eq!(verdict(&f), Verdict::Warn, "{}", messages(&f));
    assert!(f.iter().any(|f| f.message.contains("washed-out")));
}

#[test]
fn sdxl_vae_in_f16_warns_with_the_fp16_fix() {
    let f = check(&ctx(Backend::Cuda, Dtype::F16), Some(&entry("sdxl")));
    assert_eq!(verdict(&f), Verdict::Warn);
    assert!(
        f.iter()
            .any(|f| f.fix.contains("madebyollin/sdxl-vae-fp16-fix")),
        "{}",
        messages(&f)
    );
    // Also for a local SDXL folder without an entry.
    let mut c = ctx(Backend::Cuda, Dtype::F16);
    c.family = Some(Family::Sdxl);
    assert!(check(&c, None).iter().any(|f| f.fix.contains("fp16-fix")));
    assert!(check(&ctx(Backend::Cuda, Dtype::F32), Some(&entry("sdxl"))).is_empty());
}

#[test]
fn turbo_guidance_and_steps_rules_follow_the_job() {
    let mut c = ctx(Backend::Cuda, Dtype::F32);
    assert!(
        check(&c, Some(&entry("sdxl-turbo"))).is_empty(),
        "defaults are fine"
    );
    c.guidance = Some(7.5);
    c.steps = Some(30);
    let f = check(&c, Some(&entry("sdxl-turbo")));
    assert_eq!(f.len(), 2, "{}", messages(&f));
    assert!(f.iter().all(|f| f.severity == Severity::Warning));
    assert!(f.iter().any(|f| f.fix.contains("--guidance 0")));
    assert!(f.iter().any(|f| f.fix.contains("--steps 1")));
}

#[test]
fn gated_model_without_token_names_the_licence_page() {
    let mut e = entry("sd15");
    e.gated = true;
    let mut c = ctx(Backend::Cpu, Dtype::F32);
    let f = check(&c, Some(&e));
    assert_eq!(verdict(&f), Verdict::Error);
    assert!(
        f[0].fix.contains(&e.license_url) && f[0].fix.contains("HF_TOKEN"),
        "{}",
        messages(&f)
    );
    c.hf_token_present = true;
    assert!(check(&c, Some(&e)).is_empty());
}

#[test]
fn memory_over_budget_gives_needed_and_available() {
    let mut c = ctx(Backend::Cpu, Dtype::F32);
    c.memory_budget_bytes = Some(4 << 30);
    c.predicted_peak_bytes = Some(6 << 30);
    let f = check(&c, Some(&entry("sd15")));
    assert_eq!(verdict(&f), Verdict::Error);
    assert!(
        f[0].message.contains("6.0 GiB") && f[0].message.contains("4.0 GiB"),
        "{}",
        messages(&f)
    );
    c.predicted_peak_bytes = Some(3 << 30);
    assert!(check(&c, Some(&entry("sd15"))).is_empty());
}

#[test]
fn macos_bounds_compare_given_components_only() {
    let text = Registry::shipped().unwrap();
    let mut e = text.get("sd15").unwrap().clone();
    e.known_issues.clear();
    e.known_issues.push(crate::models::entry::KnownIssue {
        backend: None,
        dtype: None,
        os: Some(Os::Macos),
        chip: Some("M1".to_owned()),
        min_macos: Some("13".to_owned()),
        max_macos: Some("14.2".to_owned()),
        guidance_above: None,
        steps_above: None,
        severity: Severity::Info,
        message: "m".to_owned(),
        fix: "f".to_owned(),
    });
    let mut c = ctx(Backend::Metal, Dtype::F16);
    c.os = Os::Macos;
    c.chip = Some("Apple M1 Max".to_owned());
    for (v, hits) in [
        ("12.7", false),
        ("13.0", true),
        ("14.2.1", true),
        ("14.3", false),
        ("15", false),
    ] {
        c.macos_version = Some(v.to_owned());
        assert_eq!(!check(&c, Some(&e)).is_empty(), hits, "macOS {v}");
    }
    c.macos_version = Some("13.5".to_owned());
    c.chip = Some("Apple M10".to_owned());
    assert!(check(&c, Some(&e)).is_empty(), "M1 is a word, not a prefix");
    c.chip = None;
    assert!(
        check(&c, Some(&e)).is_empty(),
        "unknown chip never matches a chip rule"
    );
}

#[test]
fn verdict_takes_the_worst() {
    use crate::models::CompatFinding;
    let f = |severity| CompatFinding {
        severity,
        message: String::new(),
        fix: String::new(),
    };
    assert_eq!(verdict(&[]), Verdict::Ok);
    assert_eq!(verdict(&[f(Severity::Info)]), Verdict::Ok);
    assert_eq!(
        verdict(&[f(Severity::Info), f(Severity::Warning)]),
        Verdict::Warn
    );
    assert_eq!(
        verdict(&[f(Severity::Error), f(Severity::Warning)]),
        Verdict::Error
    );
}
