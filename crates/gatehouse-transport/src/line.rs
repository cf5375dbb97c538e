//! Bounded line reading for line-framed peers (stdio upstreams, ICAP servers): a peer
//! cannot make the gateway buffer without bound. A leaf module.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Reads one line of at most `max` bytes. `Ok(None)` at end of stream; an over-long line
/// is an error (the child is then restarted rather than buffered without bound).
pub async fn read_bounded_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<()>> {
    buf.clear();
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(if buf.is_empty() { None } else { Some(()) });
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                buf.extend_from_slice(&chunk[..i]);
                r.consume(i + 1);
                if buf.len() > max {
                    return Err(std::io::Error::other("line exceeds the limit"));
                }
                return Ok(Some(()));
            }
            None => {
                let len = chunk.len();
                buf.extend_from_slice(chunk);
                r.consume(len);
                if buf.len() > max {
                    return Err(std::io::Error::other("line exceeds the limit"));
                }
            }
        }
    }
}
