//! The chat prompt the enhancer sends and the clean-up of what the model answers.

/// Our system prompt: one detailed image prompt and nothing else. tests/fixtures/make_enhancer.py holds
/// the same text (the parity test checks they agree, since the reference token ids depend on it).
pub const SYSTEM_PROMPT: &str = "You are a prompt writer for an image generator. Rewrite the user's idea as one detailed image \
prompt: the subject, the style or medium, the lighting, the composition and the camera or lens. \
Answer with the prompt only, in a single paragraph, with no preamble, no quotes and no explanation.";

/// ChatML (Qwen2.5 and SmolLM2 instruct templates): a system turn, a user turn, and the assistant
/// turn opened so the model writes the answer.
pub fn chat_prompt(system: &str, user: &str) -> String {
    format!(
        "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )
}

/// Quote pairs small models like to wrap their answer in.
const QUOTES: [(char, char); 6] = [
    ('"', '"'),
    ('\'', '\''),
    ('`', '`'),
    ('\u{201c}', '\u{201d}'),
    ('\u{2018}', '\u{2019}'),
    ('\u{ab}', '\u{bb}'),
];

/// Trims the answer and strips what instruct models add despite the system prompt: a
/// "Prompt:"-style label (also on a line of its own, also in markdown bold) and surrounding quotes.
pub fn clean_output(raw: &str) -> String {
    let mut text = raw.trim();
    // A label line such as "Here is your image prompt:" followed by the prompt on the next line.
    if let Some((first, rest)) = text.split_once('\n')
        && is_label(first)
        && !rest.trim().is_empty()
    {
        text = rest.trim();
    }
    // An inline label: "Prompt: a lighthouse ...", "**Image prompt:** a lighthouse ...".
    if let Some((head, rest)) = text.split_once(':')
        && is_label(&format!("{head}:"))
        && !rest.trim().is_empty()
    {
        text = rest.trim_start_matches('*').trim();
    }
    loop {
        let stripped = strip_quotes(text);
        if stripped.len() == text.len() {
            break;
        }
        text = stripped;
    }
    text.to_string()
}

/// A short line ending in ':' that talks about "prompt" (a label, not content).
fn is_label(line: &str) -> bool {
    let line = line.trim().trim_matches('*').trim();
    let Some(body) = line.strip_suffix(':') else {
        return false;
    };
    let body = body.trim_matches('*').trim();
    body.to_lowercase().contains("prompt")
        && body.split_whitespace().count() <= 8
        && body.chars().count() <= 80
}

fn strip_quotes(text: &str) -> &str {
    for (open, close) in QUOTES {
        if let Some(inner) = text.strip_prefix(open).and_then(|t| t.strip_suffix(close)) {
            return inner.trim();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_prompt_is_chatml_with_open_assistant_turn() {
        assert_eq!(
            chat_prompt("S", "U"),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn clean_output_strips_labels_and_quotes() {
        assert_eq!(clean_output("  a red fox, 35mm  \n"), "a red fox, 35mm");
        assert_eq!(clean_output("Prompt: a red fox"), "a red fox");
        assert_eq!(clean_output("**Image prompt:** \"a red fox\""), "a red fox");
        assert_eq!(
            clean_output("Here is a detailed image prompt:\n\u{201c}a red fox at dawn\u{201d}"),
            "a red fox at dawn"
        );
        assert_eq!(clean_output("'\"a red fox\"'"), "a red fox");
        // Content colons and unmatched quotes stay.
        assert_eq!(
            clean_output("a red fox: close-up, soft light"),
            "a red fox: close-up, soft light"
        );
        assert_eq!(clean_output("\"a red fox"), "\"a red fox");
        assert_eq!(clean_output("Prompt:"), "Prompt:");
    }
}
