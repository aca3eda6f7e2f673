//! diffusers writes its config files with Python's json module, which emits the non-standard tokens
//! `NaN`, `Infinity` and `-Infinity` (DPM-Solver's `lambda_min_clipped: -Infinity`, for one).
//! serde_json refuses them; we read them as `null`, which every config field treats as "not set".

/// The text with bare NaN / Infinity / -Infinity tokens (outside strings) replaced by `null`.
pub fn python_json_to_standard(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        let token = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| rest.starts_with(t));
        match token {
            Some(t) => {
                out.push_str("null");
                rest = &rest[t.len()..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_tokens_become_null_but_strings_stay() {
        let text = r#"{"a": -Infinity, "b": NaN, "c": "NaN and -Infinity", "d": [Infinity, 1.5], "e": "q\"NaN"}"#;
        let fixed = python_json_to_standard(text);
        let v: serde_json::Value = serde_json::from_str(&fixed).unwrap();
        assert!(v["a"].is_null() && v["b"].is_null() && v["d"][0].is_null());
        assert_eq!(v["c"], "NaN and -Infinity");
        assert_eq!(v["e"], "q\"NaN");
        assert_eq!(v["d"][1], 1.5);
    }
}
