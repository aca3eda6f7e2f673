//! Streaming decode: bytes arriving token by token become text without ever splitting a character.

/// Turns bytes arriving token by token into text without ever splitting a character: complete
/// characters go out at once, a partial one waits for its next bytes, and invalid bytes become
/// U+FFFD exactly as `String::from_utf8_lossy` on the whole output would (what transformers shows).
#[derive(Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // A character cut short at the end: wait for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push('\u{fffd}');
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// What is left when generation ends: an unfinished character shows as U+FFFD.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_stream_never_splits_characters() {
        let text = "caf\u{e9} \u{65e5}\u{672c} \u{1f30a}!";
        let bytes = text.as_bytes();
        let mut stream = Utf8Stream::default();
        let mut out = String::new();
        for b in bytes {
            let delta = stream.push(&[*b]);
            assert!(text.starts_with(&(out.clone() + &delta)));
            out.push_str(&delta);
        }
        out.push_str(&stream.finish());
        assert_eq!(out, text);
    }

    #[test]
    fn utf8_stream_matches_lossy_on_invalid_bytes() {
        let chunks: [&[u8]; 6] = [
            b"a",
            &[0xe6],
            &[0x97, 0xa5],
            &[0x80, b'x'],
            &[0xe6, 0x41],
            &[0xf0, 0x9f],
        ];
        let mut stream = Utf8Stream::default();
        let mut out = String::new();
        let mut all = Vec::new();
        for c in chunks {
            all.extend_from_slice(c);
            out.push_str(&stream.push(c));
        }
        out.push_str(&stream.finish());
        assert_eq!(out, String::from_utf8_lossy(&all));
    }
}
