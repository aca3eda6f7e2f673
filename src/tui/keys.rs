//! Every key binding, in one table: the help overlay lists it and the README copies it.
//! Descriptions stay under `DESC_MAX` characters so two columns fit 160 columns.

/// (keys, what they do), grouped by where they apply.
pub const BINDINGS: &[(&str, &[(&str, &str)])] = &[
    (
        "Everywhere",
        &[
            ("Tab / Shift-Tab", "next / previous pane (or field)"),
            ("Ctrl-G, F5", "queue the job"),
            ("Esc", "leave the field being edited"),
            ("Esc (not editing)", "cancel the running job"),
            ("F1, ?", "this help (? outside text fields)"),
            ("F2", "hosts: run jobs here or on a server"),
            ("Ctrl-Q, Ctrl-C", "quit (asks while jobs run)"),
            ("q", "quit, outside text fields"),
            ("mouse", "click focuses, wheel scrolls"),
        ],
    ),
    (
        "Prompt",
        &[
            ("Enter / i", "newline / start editing"),
            ("Ctrl/Alt-←→", "word left / right"),
            ("Ctrl-W", "delete word;  Ctrl-Z undo"),
            ("↑ / ↓", "history at the first / last line"),
            ("Ctrl-E", "enhance the prompt (text model)"),
            ("Ctrl-P", "caption the init image into it"),
            ("Esc (helper runs)", "cancel Ctrl-E/P; Ctrl-Z undoes it"),
        ],
    ),
    (
        "Parameters",
        &[
            ("↑↓  Enter", "select a field, edit it, Enter sets"),
            ("←→  + -", "cycle presets, nudge numbers"),
            ("r   Del", "random seed toggle, back to default"),
            ("Tab (path)", "complete a path (images, ControlNet)"),
            ("loras: Enter", "LoRA picker: Space on/off, + - weight"),
            ("upscale: ←→", "upscale after the job: off, x2, x4"),
            ("model kinds", "the fields follow the model's kind"),
        ],
    ),
    (
        "Queue",
        &[
            ("↑↓  Shift-↑↓/J K", "select, move a queued job"),
            ("c  r  x  p", "cancel, retry, clear finished, pause"),
            ("Enter", "show the job's output"),
        ],
    ),
    (
        "Log",
        &[
            ("PgUp PgDn  End", "scroll back, back to live"),
            ("h  ↑↓ ←→  + -", "targets: select, show, record level"),
        ],
    ),
    (
        "Preview",
        &[
            ("↑↓ PgUp PgDn", "scroll a text result (wheel too)"),
            ("Home End", "top, follow the end"),
            ("Space  ←→", "video: pause / play, step a frame"),
        ],
    ),
];

/// The longest description, in characters (a test holds the table to it).
pub const DESC_MAX: usize = 38;
/// The key column's width, in characters.
pub const KEY_WIDTH: usize = 18;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binding_fits_its_column() {
        for (_, bindings) in BINDINGS {
            for (k, what) in *bindings {
                assert!(k.chars().count() < KEY_WIDTH, "{k}");
                assert!(what.chars().count() <= DESC_MAX, "{what}");
            }
        }
    }
}
