//! Stream ids (`BOOT-SEQ`): the process's start (unix ms), then a line's or an event's number.
//! A client that reconnects with one resumes exactly after it within this process's life; an id
//! from an earlier process (or an unreadable one) resumes from the oldest thing still kept.

#[derive(Debug, Clone, Copy)]
pub struct StreamIds {
    /// The process's start (unix ms): the first part of every id.
    boot: u64,
}

impl Default for StreamIds {
    fn default() -> Self {
        Self {
            boot: u64::try_from(crate::jobs::store::now_ms()).unwrap_or(0),
        }
    }
}

impl StreamIds {
    /// The id of number `seq`.
    pub fn id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.boot)
    }

    /// The number to resume after from a client's id: its own when the id is this process's,
    /// else 0 (from the oldest kept).
    pub fn resume_after(&self, id: &str) -> u64 {
        id.trim()
            .split_once('-')
            .filter(|(boot, _)| boot.parse() == Ok(self.boot))
            .and_then(|(_, seq)| seq.parse().ok())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_resume_in_this_process_only() {
        let ids = StreamIds::default();
        assert_eq!(ids.resume_after(&ids.id(7)), 7);
        assert_eq!(ids.resume_after(&format!(" {} ", ids.id(3))), 3);
        assert_eq!(ids.resume_after("12-7"), 0, "another process's id");
        assert_eq!(ids.resume_after("nonsense"), 0);
    }
}
