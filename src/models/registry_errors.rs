//! Turning TOML and validation failures into messages a user can act on: file, line, column, key.

use crate::Error;

/// A toml syntax or schema error, located by its byte span.
pub(super) fn parse_error(origin: &str, text: &str, err: &toml::de::Error) -> Error {
    let message = err.message().trim().replace('\n', "; ");
    let Some(span) = err.span() else {
        return Error::bad_input(format!("models file {origin}: {message}"));
    };
    let (line, column) = line_col(text, span.start);
    let key = key_from_message(&message).or_else(|| key_on_line(text, line));
    let entry = entry_id_around(text, line);
    let mut out = format!("models file {origin}, line {line}, column {column}");
    if let Some(id) = entry {
        out.push_str(&format!(" (entry `{id}`)"));
    }
    if let Some(key) = key {
        out.push_str(&format!(", key `{key}`"));
    }
    out.push_str(&format!(": {message}"));
    if let Some(src) = text.lines().nth(line - 1) {
        out.push_str(&format!("\n  {line} | {}", src.trim_end()));
    }
    Error::bad_input(out)
}

/// A validation failure in the entry whose table starts at `line`. Points at the key's own line when
/// the key is assigned exactly once in that entry, else at the entry's header.
pub(super) fn entry_error(
    origin: &str,
    text: &str,
    line: usize,
    id: &str,
    key: &str,
    message: &str,
) -> Error {
    let line = key_line(text, line, key).unwrap_or(line);
    Error::bad_input(format!(
        "models file {origin}, line {line} (entry `{id}`), key `{key}`: {message}"
    ))
}

/// The 1-based line where the last segment of `key` is assigned inside the entry starting at `entry_line`.
fn key_line(text: &str, entry_line: usize, key: &str) -> Option<usize> {
    let name = key.rsplit('.').next()?;
    let mut hits = text
        .lines()
        .enumerate()
        .skip(entry_line)
        .take_while(|(_, l)| l.trim() != "[[models]]")
        .filter(|(_, l)| {
            l.split_once('=')
                .is_some_and(|(k, _)| k.trim().trim_matches('"') == name)
        })
        .map(|(i, _)| i + 1);
    let first = hits.next()?;
    hits.next().is_none().then_some(first)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

/// serde names the key in "unknown field `x`", "missing field `x`", "duplicate field `x`".
fn key_from_message(message: &str) -> Option<String> {
    [
        "unknown field `",
        "missing field `",
        "duplicate field `",
        "duplicate key `",
    ]
    .iter()
    .find_map(|prefix| {
        let rest = &message[message.find(prefix)? + prefix.len()..];
        Some(rest[..rest.find('`')?].to_owned())
    })
}

/// The key assigned on a `key = value` line, or the header of a `[table]` line.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let src = text.lines().nth(line.checked_sub(1)?)?.trim();
    if src.starts_with('[') {
        let name = src.trim_start_matches('[').split(']').next()?.trim();
        return (!name.is_empty()).then(|| name.to_owned());
    }
    let (key, _) = src.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('#')).then(|| key.to_owned())
}

/// The id of the `[[models]]` entry the given line belongs to, when it can be read off the text.
fn entry_id_around(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let upto = line.min(lines.len());
    let start = lines[..upto]
        .iter()
        .rposition(|l| l.trim() == "[[models]]")?;
    lines[start + 1..]
        .iter()
        .take_while(|l| !l.trim_start().starts_with("[[models]]"))
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "id").then(|| v.trim().trim_matches('"').to_owned())
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, text.rfind('=').unwrap_or(0)), (2, 4));
    }

    #[test]
    fn keys_come_from_messages_or_lines() {
        assert_eq!(
            key_from_message("unknown field `colour`, expected ..."),
            Some("colour".to_owned())
        );
        assert_eq!(
            key_from_message("missing field `defaults`"),
            Some("defaults".to_owned())
        );
        let text = "[[models]]\nid = \"x\"\nkind = \"paint\"\n";
        assert_eq!(key_on_line(text, 3), Some("kind".to_owned()));
        assert_eq!(key_on_line(text, 1), Some("models".to_owned()));
        assert_eq!(entry_id_around(text, 3), Some("x".to_owned()));
        assert_eq!(key_line(text, 1, "kind"), Some(3));
        assert_eq!(key_line(text, 1, "defaults.kind"), Some(3));
        assert_eq!(key_line(text, 1, "width"), None);
        let twice = "[[models]]\nweights = 1\nweights = 2\n";
        assert_eq!(
            key_line(twice, 1, "weights"),
            None,
            "ambiguous keys point at the entry"
        );
    }
}
