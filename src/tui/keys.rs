//! Every key binding, in one table: the help overlay lists it and the README can copy it.

/// (keys, what they do), grouped by where they apply.
pub const BINDINGS: &[(&str, &[(&str, &str)])] = &[
    (
        "Everywhere",
        &[
            ("Tab / Shift-Tab", "next / previous pane (or field)"),
            ("Ctrl-G, F5", "queue the job"),
            ("Esc", "leave the field being edited"),
            ("?", "this help (outside text fields)"),
            ("q, Ctrl-C", "quit (asks while jobs run)"),
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
            ("Ctrl-E", "enhance the prompt (any pane; text model)"),
            ("Ctrl-P", "caption the init image into the prompt"),
            ("Esc (running)", "cancel Ctrl-E/P; Ctrl-Z undoes the result"),
        ],
    ),
    (
        "Parameters",
        &[
            ("↑↓  Enter", "select field, edit it (Enter again sets)"),
            ("←→  + -", "cycle presets, nudge numbers"),
            ("r   Del", "random seed toggle, back to default"),
            ("Tab (path)", "complete init image / mask / audio path"),
            (
                "model kinds",
                "fields follow the model: image, tts, music, stt, caption",
            ),
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
            ("h  ↑↓ ←→  + -", "targets: select, show level, record level"),
        ],
    ),
    (
        "Preview",
        &[
            ("↑↓ PgUp PgDn", "scroll a text result (wheel too)"),
            ("Home End", "top, follow the end"),
        ],
    ),
];

/// The number of lines the help text takes (group titles, bindings and a gap between groups).
pub fn help_lines() -> usize {
    BINDINGS.iter().map(|(_, b)| b.len() + 2).sum::<usize>() - 1
}
