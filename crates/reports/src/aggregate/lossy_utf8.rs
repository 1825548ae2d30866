//! A reader that repairs invalid UTF-8 on the fly.

use std::io::BufRead;

/// Repairs invalid UTF-8 on the fly (each bad byte becomes U+FFFD), so one broken byte in
/// a reporter's org name does not cost the whole report. Valid input is passed through
/// from the inner reader's buffer without a copy; only the bytes around a bad or split
/// sequence go through `out`.
pub(super) struct LossyUtf8<R> {
    inner: R,
    /// Bytes at the start of the inner buffer already checked to be valid UTF-8.
    valid: usize,
    /// Repaired bytes, served before the inner buffer.
    out: Vec<u8>,
    pos: usize,
}

impl<R: BufRead> LossyUtf8<R> {
    pub(super) fn new(inner: R) -> Self {
        LossyUtf8 { inner, valid: 0, out: Vec::new(), pos: 0 }
    }

    /// Called with nothing left to serve: checks the next bytes of the inner reader.
    fn advance(&mut self) -> std::io::Result<()> {
        self.out.clear();
        self.pos = 0;
        let chunk = self.inner.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        let error = match std::str::from_utf8(chunk) {
            Ok(_) => {
                self.valid = chunk.len();
                return Ok(());
            }
            Err(e) if e.valid_up_to() > 0 => {
                self.valid = e.valid_up_to();
                return Ok(());
            }
            Err(e) => e,
        };
        if let Some(bad) = error.error_len() {
            self.out.extend_from_slice("\u{fffd}".as_bytes());
            self.inner.consume(bad);
            return Ok(());
        }
        // A sequence split across the inner buffer's end: gather up to 4 bytes by hand.
        let mut seq = chunk.to_vec();
        let taken = seq.len();
        self.inner.consume(taken);
        loop {
            let more = self.inner.fill_buf()?;
            let Some(&b) = more.first() else { break };
            seq.push(b);
            match std::str::from_utf8(&seq) {
                Ok(_) => {
                    self.inner.consume(1);
                    self.out.extend_from_slice(&seq);
                    return Ok(());
                }
                Err(e) if e.error_len().is_none() => self.inner.consume(1),
                Err(_) => {
                    // `b` does not continue the sequence: it is read again on its own.
                    seq.pop();
                    break;
                }
            }
        }
        debug_assert!(!seq.is_empty());
        self.out.extend_from_slice("\u{fffd}".as_bytes());
        Ok(())
    }
}

impl<R: BufRead> std::io::Read for LossyUtf8<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for LossyUtf8<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        // Each round serves something or consumes input, so this ends.
        while self.pos >= self.out.len() && self.valid == 0 {
            if self.inner.fill_buf()?.is_empty() {
                return Ok(&[]);
            }
            self.advance()?;
        }
        if self.pos < self.out.len() {
            return Ok(&self.out[self.pos..]);
        }
        let valid = self.valid;
        Ok(&self.inner.fill_buf()?[..valid])
    }

    fn consume(&mut self, amt: usize) {
        if self.pos < self.out.len() {
            self.pos = (self.pos + amt).min(self.out.len());
        } else {
            let amt = amt.min(self.valid);
            self.valid -= amt;
            self.inner.consume(amt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LossyUtf8;
    use proptest::prelude::*;
    use std::io::{BufReader, Read};

    fn repaired(data: &[u8], capacity: usize) -> String {
        let mut out = String::new();
        LossyUtf8::new(BufReader::with_capacity(capacity, data)).read_to_string(&mut out).expect("valid UTF-8 out");
        out
    }

    #[test]
    fn repairs_like_from_utf8_lossy_whatever_the_buffer_size() {
        let samples: [&[u8]; 5] = [
            "plain ascii <org_name>é€𝄞</org_name>".as_bytes(),
            b"bad \xff byte, split \xe2\x82\xac euro, cut \xe2\x82",
            b"\xf0\x9d\x84",
            b"\xc3\x28 \xa0\xa1 \xe2\x28\xa1 \xf0\x28\x8c\xbc",
            b"",
        ];
        for data in samples {
            for capacity in 1..9 {
                assert_eq!(repaired(data, capacity), String::from_utf8_lossy(data), "{data:?} with {capacity}");
            }
        }
    }

    proptest! {
        #[test]
        fn any_bytes_any_buffer(data in proptest::collection::vec(any::<u8>(), 0..200), capacity in 1usize..16) {
            prop_assert_eq!(repaired(&data, capacity), String::from_utf8_lossy(&data));
        }
    }
}
