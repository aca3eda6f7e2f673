//! The library's error boundary: every module error converts into `Error`, whose kind decides the
//! process exit code (DESIGN.md: 0 done, 1 a job failed, 2 bad input or configuration, 130 cancelled).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user can fix this (a flag, a file, a model); nothing was written. Exit 2.
    #[error("{message}")]
    BadInput { message: String },
    /// The job was cancelled (Ctrl-C, SIGTERM, the TUI). Exit 130.
    #[error("cancelled")]
    Cancelled,
    /// A job ran and failed (non-finite values, out of memory, a backend error). Exit 1.
    #[error("{message}")]
    JobFailed { message: String },
    /// An engine panicked mid-job; the job failed and the engine must be reloaded. Exit 1.
    #[error("the engine crashed: {message}")]
    EngineCrashed { message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Shown with its chain of contexts on one line, never with candle's captured backtrace
    /// (RUST_BACKTRACE makes candle attach one; it would fill a `failed` event with frames).
    #[error("tensor computation failed: {}", candle_message(.0))]
    Candle(candle_core::Error),
    /// An output could not be written (disk full, a read-only or vanished folder): the job goes
    /// back to the queue for `--resume` and the batch stops. Exit 1.
    #[error("cannot write the output {path}: {source}")]
    OutputWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<candle_core::Error> for Error {
    /// A network stopped by its job's cancel token is a cancellation, not a failure.
    fn from(err: candle_core::Error) -> Self {
        if crate::engines::progress::is_cancellation(&err) {
            Self::Cancelled
        } else {
            Self::Candle(err)
        }
    }
}

/// A candle error as one line: contexts and paths before the cause, backtraces dropped.
pub fn candle_message(err: &candle_core::Error) -> String {
    use candle_core::Error as E;
    let text = match err {
        E::WithBacktrace { inner, .. } => return candle_message(inner),
        E::Context { inner, context } => format!("{context}: {}", candle_message(inner)),
        E::WithPath { inner, path } => format!("{}: {}", path.display(), candle_message(inner)),
        E::WrappedContext { wrapped, context } => format!("{context}: {wrapped}"),
        other => other.to_string(),
    };
    text.split('\n')
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::BadInput {
            message: message.into(),
        }
    }

    pub fn job_failed(message: impl Into<String>) -> Self {
        Self::JobFailed {
            message: message.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// Bad input of job `index` (0-based) of a batch of `count` says which job it is.
    pub fn in_batch(self, index: usize, count: usize) -> Self {
        match self {
            Self::BadInput { message } if count > 1 => {
                Self::bad_input(format!("job {} of {count}: {message}", index + 1))
            }
            other => other,
        }
    }

    /// A file error while writing an output becomes `OutputWrite` (other errors pass through).
    pub fn on_output_write(self) -> Self {
        match self {
            Self::Io { path, source } => Self::OutputWrite { path, source },
            other => other,
        }
    }

    /// The process exit code this error should end a command-line run with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::BadInput { .. } => 2,
            Self::Cancelled => 130,
            Self::JobFailed { .. }
            | Self::EngineCrashed { .. }
            | Self::Io { .. }
            | Self::Candle(_)
            | Self::OutputWrite { .. } => 1,
        }
    }
}

/// Exit code for any error that reached `main`: library errors know theirs, the rest are failures.
pub fn exit_code_of(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Error>())
        .map_or(1, Error::exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_in_a_batch_names_the_job() {
        let one = Error::bad_input("no prompt").in_batch(0, 1);
        assert_eq!(one.to_string(), "no prompt");
        let third = Error::bad_input("no prompt").in_batch(2, 5);
        assert_eq!(third.to_string(), "job 3 of 5: no prompt");
        assert_eq!(Error::job_failed("x").in_batch(2, 5).to_string(), "x");
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(Error::bad_input("x").exit_code(), 2);
        assert_eq!(Error::Cancelled.exit_code(), 130);
        assert_eq!(Error::job_failed("x").exit_code(), 1);
        let crash = Error::EngineCrashed {
            message: "index out of bounds".into(),
        };
        assert_eq!(crash.exit_code(), 1);
        assert_eq!(crash.to_string(), "the engine crashed: index out of bounds");
        let wrapped = anyhow::Error::new(Error::bad_input("size")).context("while planning");
        assert_eq!(exit_code_of(&wrapped), 2);
        assert_eq!(exit_code_of(&anyhow::anyhow!("other")), 1);
    }

    #[test]
    fn candle_errors_show_their_chain_without_a_backtrace() {
        let inner = candle_core::Error::Msg("unsupported dtype BF16 for op matmul".into());
        let traced = candle_core::Error::WithBacktrace {
            inner: Box::new(inner),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        }
        .context("unet block 2");
        let shown = Error::from(traced).to_string();
        assert_eq!(
            shown,
            "tensor computation failed: unet block 2: unsupported dtype BF16 for op matmul"
        );
    }
}
