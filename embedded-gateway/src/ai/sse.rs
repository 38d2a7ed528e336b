//! Owns Server-Sent Events framing: an incremental decoder that accepts network reads split at
//! any byte (LF, CRLF or CR line ends, comments, multi-line `data`), and the encoder for the
//! `data: …\n\n` frames Gantry sends downstream.

use bytes::{BufMut, Bytes, BytesMut};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Incremental SSE decoder (WHATWG event-stream parsing rules).
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
    /// The previous read ended with `\r`; a leading `\n` in the next read belongs to it.
    pending_cr: bool,
}

impl SseDecoder {
    /// Feeds one network read; complete events are appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        let mut chunk = chunk;
        if self.pending_cr {
            self.pending_cr = false;
            if chunk.first() == Some(&b'\n') {
                chunk = &chunk[1..];
            }
        }
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        let mut i = 0;
        while i < self.buf.len() {
            let b = self.buf[i];
            if b == b'\n' || b == b'\r' {
                let line = std::mem::take(&mut self.buf);
                self.line(&line[start..i], out);
                self.buf = line;
                let mut next = i + 1;
                if b == b'\r' {
                    if next < self.buf.len() {
                        if self.buf[next] == b'\n' {
                            next += 1;
                        }
                    } else {
                        self.pending_cr = true;
                    }
                }
                start = next;
                i = next;
            } else {
                i += 1;
            }
        }
        self.buf.drain(..start);
    }

    /// Ends the stream: a final unterminated line is processed and a pending event dispatched.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.line(&line, out);
        }
        self.line(b"", out);
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.event = None;
            self.has_data = false;
            self.data.clear();
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(p) => {
                let v = &line[p + 1..];
                (&line[..p], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            _ => {}
        }
    }
}

/// The stream terminator OpenAI clients expect.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// Frames one JSON payload as `data: <json>\n\n`.
pub fn encode_data(json: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(json.len() + 8);
    b.put_slice(b"data: ");
    b.put_slice(json);
    b.put_slice(b"\n\n");
    b.freeze()
}

/// Frames a named event (`event: <name>\ndata: <json>\n\n`), as Anthropic sends them.
pub fn encode_event(name: &str, json: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(json.len() + name.len() + 16);
    b.put_slice(b"event: ");
    b.put_slice(name.as_bytes());
    b.put_slice(b"\ndata: ");
    b.put_slice(json);
    b.put_slice(b"\n\n");
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORDED: &str = include_str!("fixtures/anthropic-stream.txt");

    fn decode_all(parts: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        for p in parts {
            d.feed(p, &mut out);
        }
        d.finish(&mut out);
        out
    }

    #[test]
    fn decodes_named_events_comments_and_multiline_data() {
        let text = b": keep-alive\nevent: a\ndata: one\ndata: two\n\ndata:three\n\n";
        let events = decode_all(&[text]);
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: Some("a".into()),
                    data: "one\ntwo".into()
                },
                SseEvent {
                    event: None,
                    data: "three".into()
                },
            ]
        );
    }

    #[test]
    fn crlf_and_cr_line_ends_decode_like_lf() {
        let lf = decode_all(&[RECORDED.as_bytes()]);
        let crlf = RECORDED.replace('\n', "\r\n");
        let cr = RECORDED.replace('\n', "\r");
        assert_eq!(decode_all(&[crlf.as_bytes()]), lf);
        assert_eq!(decode_all(&[cr.as_bytes()]), lf);
        assert!(lf.len() > 5);
    }

    #[test]
    fn a_recorded_stream_split_at_every_offset_decodes_identically() {
        for text in [RECORDED.to_owned(), RECORDED.replace('\n', "\r\n")] {
            let bytes = text.as_bytes();
            let whole = decode_all(&[bytes]);
            for cut in 0..=bytes.len() {
                let (a, b) = bytes.split_at(cut);
                assert_eq!(decode_all(&[a, b]), whole, "split at {cut}");
            }
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(decode_all(&singles), whole);
        }
    }

    #[test]
    fn an_unterminated_final_event_is_dispatched_on_finish() {
        assert_eq!(decode_all(&[b"data: x"]).len(), 1);
    }
}
