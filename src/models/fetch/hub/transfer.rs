//! One file's bytes over the wire, on the I/O thread: ranged requests appended to the `.part` file,
//! resumed after a broken or stalled body.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use super::{CallError, RETRIES, authorized};
use crate::models::fetch::cancel::IoCtx;
use crate::{Error, Result};

/// The I/O thread's side of a download: `Range: bytes=<len>-` requests appended to the `.part`
/// file until it is whole; a body that breaks off or stalls is resumed up to `RETRIES` times.
pub(super) fn transfer(
    ctx: &IoCtx<std::result::Result<(), CallError>>,
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    mut file: File,
    part: &Path,
) -> Result<std::result::Result<(), CallError>> {
    let io = |e| Error::io(part, e);
    let mut broken = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let mut done = file.metadata().map_err(io)?.len();
        let request = authorized(agent.get(url), token).set("Range", &format!("bytes={done}-"));
        let response = match request.call() {
            Ok(r) => r,
            // The .part is longer than the file: start over.
            Err(ureq::Error::Status(416, _)) if done > 0 && broken < RETRIES => {
                file.set_len(0).map_err(io)?;
                broken += 1;
                continue;
            }
            Err(ureq::Error::Status(code, r)) => {
                return Ok(Err(CallError::Status(
                    code,
                    r.into_string().unwrap_or_default(),
                )));
            }
            Err(ureq::Error::Transport(t)) => return Ok(Err(CallError::Transport(t))),
        };
        if response.status() != 206 && done > 0 {
            // The server ignored the range and sends the whole file.
            file.set_len(0).map_err(io)?;
            done = 0;
        }
        ctx.advance(done);
        let mut body = response.into_reader();
        let error = loop {
            if ctx.stopped() {
                return Ok(Err(CallError::Stopped));
            }
            match body.read(&mut buf) {
                Ok(0) => return Ok(Ok(())),
                Ok(n) => {
                    file.write_all(&buf[..n]).map_err(io)?;
                    done += n as u64;
                    ctx.advance(done);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break e,
            }
        };
        broken += 1;
        if broken > RETRIES {
            return Ok(Err(CallError::Body(error)));
        }
        tracing::info!(url, %error, attempt = broken, "the download broke off; resuming");
        if ctx.pause(std::time::Duration::from_millis(300 << broken.min(5))) {
            return Ok(Err(CallError::Stopped));
        }
    }
}
