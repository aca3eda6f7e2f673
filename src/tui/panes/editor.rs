//! A small multi-line text editor: cursor movement, word jumps, paste, undo. Pure state, no drawing.

/// The cursor: line index and column in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    pub row: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextEditor {
    lines: Vec<String>,
    cursor: Cursor,
    undo: Vec<(Vec<String>, Cursor)>,
}

const UNDO_DEPTH: usize = 200;

fn byte_at(line: &str, col: usize) -> usize {
    line.char_indices().nth(col).map_or(line.len(), |(i, _)| i)
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl TextEditor {
    pub fn new(text: &str) -> Self {
        let mut editor = Self::default();
        editor.set_text(text);
        editor
    }

    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.lines.iter().all(String::is_empty)
    }

    /// Replaces the text (history recall); undoable; the cursor goes to the end.
    pub fn set_text(&mut self, text: &str) {
        if !self.lines.is_empty() {
            self.snapshot();
        }
        self.lines = text.split('\n').map(str::to_owned).collect();
        let row = self.lines.len() - 1;
        self.cursor = Cursor {
            row,
            col: self.lines[row].chars().count(),
        };
    }

    pub fn on_first_line(&self) -> bool {
        self.cursor.row == 0
    }

    pub fn on_last_line(&self) -> bool {
        self.cursor.row + 1 >= self.lines.len()
    }

    fn line_len(&self, row: usize) -> usize {
        self.lines.get(row).map_or(0, |l| l.chars().count())
    }

    fn snapshot(&mut self) {
        if self.undo.len() >= UNDO_DEPTH {
            self.undo.remove(0);
        }
        self.undo.push((self.lines.clone(), self.cursor));
    }

    pub fn undo(&mut self) -> bool {
        match self.undo.pop() {
            Some((lines, cursor)) => {
                self.lines = lines;
                self.cursor = cursor;
                true
            }
            None => false,
        }
    }

    pub fn insert_char(&mut self, c: char) {
        if c == '\n' {
            self.newline();
            return;
        }
        self.snapshot();
        let Cursor { row, col } = self.cursor;
        let line = &mut self.lines[row];
        line.insert(byte_at(line, col), c);
        self.cursor.col += 1;
    }

    /// Inserts text that may hold newlines (a bracketed paste) as one undo step.
    pub fn insert_str(&mut self, text: &str) {
        self.snapshot();
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let Cursor { row, col } = self.cursor;
        let at = byte_at(&self.lines[row], col);
        let tail = self.lines[row].split_off(at);
        let mut pieces = text.split('\n');
        if let Some(first) = pieces.next() {
            self.lines[row].push_str(first);
        }
        let mut r = row;
        for piece in pieces {
            r += 1;
            self.lines.insert(r, piece.to_owned());
        }
        self.cursor = Cursor {
            row: r,
            col: self.lines[r].chars().count(),
        };
        self.lines[r].push_str(&tail);
    }

    pub fn newline(&mut self) {
        self.snapshot();
        let Cursor { row, col } = self.cursor;
        let at = byte_at(&self.lines[row], col);
        let tail = self.lines[row].split_off(at);
        self.lines.insert(row + 1, tail);
        self.cursor = Cursor {
            row: row + 1,
            col: 0,
        };
    }

    pub fn backspace(&mut self) {
        let Cursor { row, col } = self.cursor;
        if col > 0 {
            self.snapshot();
            let line = &mut self.lines[row];
            let at = byte_at(line, col - 1);
            line.remove(at);
            self.cursor.col -= 1;
        } else if row > 0 {
            self.snapshot();
            let line = self.lines.remove(row);
            let prev_len = self.line_len(row - 1);
            self.lines[row - 1].push_str(&line);
            self.cursor = Cursor {
                row: row - 1,
                col: prev_len,
            };
        }
    }

    pub fn delete(&mut self) {
        let Cursor { row, col } = self.cursor;
        if col < self.line_len(row) {
            self.snapshot();
            let line = &mut self.lines[row];
            let at = byte_at(line, col);
            line.remove(at);
        } else if row + 1 < self.lines.len() {
            self.snapshot();
            let next = self.lines.remove(row + 1);
            self.lines[row].push_str(&next);
        }
    }

    /// Deletes the word before the cursor (Ctrl-W, Ctrl-Backspace).
    pub fn delete_word_back(&mut self) {
        let start = self.cursor;
        self.word_left();
        if self.cursor.row != start.row {
            self.cursor = start;
            self.backspace();
            return;
        }
        if self.cursor.col < start.col {
            self.snapshot();
            let line = &mut self.lines[start.row];
            let (a, b) = (byte_at(line, self.cursor.col), byte_at(line, start.col));
            line.replace_range(a..b, "");
        }
    }

    pub fn left(&mut self) {
        if self.cursor.col > 0 {
            self.cursor.col -= 1;
        } else if self.cursor.row > 0 {
            self.cursor.row -= 1;
            self.cursor.col = self.line_len(self.cursor.row);
        }
    }

    pub fn right(&mut self) {
        if self.cursor.col < self.line_len(self.cursor.row) {
            self.cursor.col += 1;
        } else if !self.on_last_line() {
            self.cursor.row += 1;
            self.cursor.col = 0;
        }
    }

    pub fn up(&mut self) {
        if self.cursor.row > 0 {
            self.cursor.row -= 1;
            self.cursor.col = self.cursor.col.min(self.line_len(self.cursor.row));
        }
    }

    pub fn down(&mut self) {
        if !self.on_last_line() {
            self.cursor.row += 1;
            self.cursor.col = self.cursor.col.min(self.line_len(self.cursor.row));
        }
    }

    pub fn home(&mut self) {
        self.cursor.col = 0;
    }

    pub fn end(&mut self) {
        self.cursor.col = self.line_len(self.cursor.row);
    }

    /// To the start of the previous word (across lines).
    pub fn word_left(&mut self) {
        if self.cursor.col == 0 {
            self.left();
            return;
        }
        let chars: Vec<char> = self.lines[self.cursor.row].chars().collect();
        let mut col = self.cursor.col;
        while col > 0 && !is_word(chars[col - 1]) {
            col -= 1;
        }
        while col > 0 && is_word(chars[col - 1]) {
            col -= 1;
        }
        self.cursor.col = col;
    }

    /// To the end of the next word (across lines).
    pub fn word_right(&mut self) {
        let len = self.line_len(self.cursor.row);
        if self.cursor.col >= len {
            self.right();
            return;
        }
        let chars: Vec<char> = self.lines[self.cursor.row].chars().collect();
        let mut col = self.cursor.col;
        while col < len && !is_word(chars[col]) {
            col += 1;
        }
        while col < len && is_word(chars[col]) {
            col += 1;
        }
        self.cursor.col = col;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_newlines_and_backspace() {
        let mut e = TextEditor::new("");
        for c in "ab".chars() {
            e.insert_char(c);
        }
        e.newline();
        e.insert_char('é');
        assert_eq!(e.text(), "ab\né");
        e.home();
        e.backspace();
        assert_eq!(e.text(), "abé");
        assert_eq!(e.cursor(), Cursor { row: 0, col: 2 });
        e.delete();
        assert_eq!(e.text(), "ab");
    }

    #[test]
    fn word_jumps_and_delete_word() {
        let mut e = TextEditor::new("a red fox, jumping");
        e.word_left();
        assert_eq!(e.cursor().col, 11);
        e.word_left();
        assert_eq!(e.cursor().col, 6);
        e.word_right();
        assert_eq!(e.cursor().col, 9);
        e.end();
        e.delete_word_back();
        assert_eq!(e.text(), "a red fox, ");
    }

    #[test]
    fn paste_is_one_undo_step() {
        let mut e = TextEditor::new("xy");
        e.left();
        e.insert_str("1\r\n2\n3");
        assert_eq!(e.text(), "x1\n2\n3y");
        assert_eq!(e.cursor(), Cursor { row: 2, col: 1 });
        assert!(e.undo());
        assert_eq!(e.text(), "xy");
        assert_eq!(e.cursor(), Cursor { row: 0, col: 1 });
    }

    #[test]
    fn movement_is_clamped() {
        let mut e = TextEditor::new("long line\nab");
        e.up();
        assert_eq!(e.cursor(), Cursor { row: 0, col: 2 });
        e.end();
        e.down();
        assert_eq!(e.cursor(), Cursor { row: 1, col: 2 });
        e.right();
        e.down();
        assert!(e.on_last_line());
        let mut empty = TextEditor::new("");
        empty.left();
        empty.backspace();
        empty.delete();
        empty.word_left();
        empty.word_right();
        assert!(empty.is_empty());
    }
}
