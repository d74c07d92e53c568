//! Reading an answer's body after its head: by `Content-Length`, chunked, or until the
//! server closes; the body is dropped as it streams through, but for the first bytes
//! the body checks read.

use std::io;

use super::{io_error, BodyLen, Conn, ExchangeError, MAX_HEAD_BYTES, READ_CHUNK};
use crate::results::Failure;

impl Conn {
    /// Reads (and drops) the body that follows a head of `head_len` bytes; `Ok(false)`
    /// when the connection cannot carry another request after it. The first `capture`
    /// bytes of the body are kept in `prefix` (for the body checks).
    #[inline]
    pub(super) async fn read_body(
        &mut self,
        body: BodyLen,
        head_len: usize,
        capture: usize,
    ) -> Result<bool, ExchangeError> {
        let failed = |e: io::Error| io_error(&e);
        match body {
            BodyLen::None => Ok(self.buf.len() == head_len),
            BodyLen::Length(n) => {
                let have = (self.buf.len() - head_len) as u64;
                if have > n {
                    // Bytes beyond the message: the framing is not what it claims.
                    return Ok(false);
                }
                keep_prefix(&mut self.prefix, capture, &self.buf[head_len..]);
                let mut left = n - have;
                while left > 0 {
                    self.buf.clear();
                    let got = self.read_more().await.map_err(failed)? as u64;
                    if got == 0 {
                        return Err(ExchangeError::Failed(Failure::Reset));
                    }
                    if got > left {
                        return Ok(false);
                    }
                    keep_prefix(&mut self.prefix, capture, &self.buf);
                    left -= got;
                }
                Ok(true)
            }
            BodyLen::Chunked => {
                self.buf.drain(..head_len);
                self.skip_chunked(capture).await
            }
            BodyLen::UntilClose => {
                keep_prefix(&mut self.prefix, capture, &self.buf[head_len..]);
                loop {
                    self.buf.clear();
                    if self.read_more().await.map_err(failed)? == 0 {
                        break;
                    }
                    keep_prefix(&mut self.prefix, capture, &self.buf);
                }
                Ok(false)
            }
        }
    }

    /// Reads a chunked body whose first bytes are in the buffer. `Ok(true)` when it ended
    /// exactly at the message boundary.
    async fn skip_chunked(&mut self, capture: usize) -> Result<bool, ExchangeError> {
        let failed = |e: io::Error| io_error(&e);
        let mut pos = 0usize;
        loop {
            // Chunk-size line.
            let (consumed, size) = loop {
                match httparse::parse_chunk_size(&self.buf[pos..]) {
                    Ok(httparse::Status::Complete(x)) => break x,
                    Ok(httparse::Status::Partial) => {
                        if self.buf.len() - pos > MAX_HEAD_BYTES {
                            return Err(ExchangeError::Failed(Failure::Malformed));
                        }
                        if self.read_more().await.map_err(failed)? == 0 {
                            return Err(ExchangeError::Failed(Failure::Reset));
                        }
                    }
                    Err(_) => return Err(ExchangeError::Failed(Failure::Malformed)),
                }
            };
            pos += consumed;
            if size == 0 {
                // Trailers (usually none), then the empty line.
                loop {
                    let rest = &self.buf[pos..];
                    if let Some(end) = find_crlf(rest) {
                        pos += end + 2;
                        if end == 0 {
                            return Ok(pos == self.buf.len());
                        }
                        continue;
                    }
                    if rest.len() > MAX_HEAD_BYTES {
                        return Err(ExchangeError::Failed(Failure::Malformed));
                    }
                    if self.read_more().await.map_err(failed)? == 0 {
                        return Err(ExchangeError::Failed(Failure::Reset));
                    }
                }
            }
            // Chunk data plus its CRLF, discarded as it streams through. A size that
            // overflows with its CRLF is no real chunk.
            let Some(mut left) = size.checked_add(2) else {
                return Err(ExchangeError::Failed(Failure::Malformed));
            };
            loop {
                let have = (self.buf.len() - pos) as u64;
                // The chunk's data, not its CRLF, is the body the checks read.
                let data = have.min(left.saturating_sub(2)) as usize;
                keep_prefix(&mut self.prefix, capture, &self.buf[pos..pos + data]);
                if have >= left {
                    pos += left as usize;
                    break;
                }
                left -= have;
                self.buf.clear();
                pos = 0;
                if self.read_more().await.map_err(failed)? == 0 {
                    return Err(ExchangeError::Failed(Failure::Reset));
                }
            }
            // Keep the buffer from growing across many small chunks.
            if pos > READ_CHUNK {
                self.buf.drain(..pos);
                pos = 0;
            }
        }
    }
}

/// Appends to `prefix` what of `bytes` fits within `capture` bytes in all.
#[inline]
fn keep_prefix(prefix: &mut Vec<u8>, capture: usize, bytes: &[u8]) {
    let room = capture.saturating_sub(prefix.len());
    if room > 0 {
        prefix.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}
