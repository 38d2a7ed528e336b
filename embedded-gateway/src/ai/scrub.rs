//! Owns scrubbing a target's credentials out of everything a provider sends back to a client:
//! response bodies, header values and stream events. Providers echo the key they were given
//! (OpenAI's "Incorrect API key provided: sk-abc***…xyz"), whole or with its middle masked;
//! every whole secret, every prefix or suffix of one at least [`MIN_FRAGMENT`] bytes long, and
//! every masked echo that shows a recognisable prefix and/or suffix becomes `[redacted]`.
//!
//! Built once per target ([`Secrets::new`]); a text that shows no part of a secret costs a few
//! `memchr`/`memmem` passes and no allocation.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use memchr::memmem::Finder;

/// What a secret, or the part of it that was shown, is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Shortest prefix or suffix of a secret redacted when it appears unmasked.
pub const MIN_FRAGMENT: usize = 8;

/// Fewest characters of a secret a masked echo must show, on both sides of the mask together,
/// to be recognised; showing only one side takes [`MIN_ONE_SIDED`].
const MIN_MASKED_REVEAL: usize = 4;
const MIN_ONE_SIDED: usize = 6;

/// Longest text given [`Secrets::surely_clean`]'s first look; longer ones go straight to the
/// `memmem` search.
const PREFILTER_MAX: usize = 128;

/// Secrets shorter than this are not scrubbed at all (too likely to match ordinary text).
const MIN_SECRET: usize = 4;

/// One target's secrets, ready to search for. Cheap to clone.
#[derive(Clone, Default)]
pub struct Secrets(Arc<[Secret]>);

struct Secret {
    text: Box<[u8]>,
    whole: Finder<'static>,
    /// The first and last [`MIN_FRAGMENT`] bytes, for secrets at least that long.
    head: Option<Finder<'static>>,
    tail: Option<Finder<'static>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

impl Secrets {
    /// Compiles the configured credential values. A value with an auth scheme
    /// (`Bearer sk-…`) also contributes its token, which is what providers echo; a secret that
    /// contains another listed one is left out, since scrubbing the inner one covers it.
    pub fn new(raw: impl IntoIterator<Item = String>) -> Self {
        let mut list: Vec<String> = Vec::new();
        for s in raw {
            let s = s.trim();
            if let Some((_, token)) = s.rsplit_once(' ') {
                list.push(token.to_owned());
            }
            list.push(s.to_owned());
        }
        list.retain(|s| s.len() >= MIN_SECRET);
        list.sort_unstable_by_key(|s| s.len());
        list.dedup();
        let mut kept: Vec<String> = Vec::new();
        for s in list {
            if !kept.iter().any(|k| s.contains(k.as_str())) {
                kept.push(s);
            }
        }
        Self(
            kept.into_iter()
                .map(|s| {
                    let b = s.as_bytes();
                    let long = b.len() >= MIN_FRAGMENT;
                    Secret {
                        whole: Finder::new(b).into_owned(),
                        head: long.then(|| Finder::new(&b[..MIN_FRAGMENT]).into_owned()),
                        tail: long.then(|| Finder::new(&b[b.len() - MIN_FRAGMENT..]).into_owned()),
                        text: b.into(),
                    }
                })
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The secrets as text, for scrubbing a log entry.
    pub fn texts(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|s| String::from_utf8_lossy(&s.text).into_owned())
            .collect()
    }

    /// The length of the longest secret.
    fn longest(&self) -> usize {
        self.0.iter().map(|s| s.text.len()).max().unwrap_or(0)
    }

    /// `body` with every leak redacted; the same `Bytes` when there is none.
    pub fn scrub_bytes(&self, body: Bytes) -> Bytes {
        match self.scrubbed(&body) {
            Some(out) => Bytes::from(out),
            None => body,
        }
    }

    /// `text` with every leak redacted.
    pub fn scrub_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.scrubbed(text.as_bytes()) {
            Some(out) => Cow::Owned(
                String::from_utf8(out)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
            None => Cow::Borrowed(text),
        }
    }

    /// The header value with every leak redacted, or `None` when it shows none.
    pub fn scrub_header(&self, v: &HeaderValue) -> Option<HeaderValue> {
        let out = self.scrubbed(v.as_bytes())?;
        HeaderValue::from_bytes(&out)
            .ok()
            .or(Some(HeaderValue::from_static(REDACTED)))
    }

    /// The redacted copy of `hay`, or `None` when nothing in it shows a secret.
    fn scrubbed(&self, hay: &[u8]) -> Option<Vec<u8>> {
        if self.is_empty() || (hay.len() <= PREFILTER_MAX && self.surely_clean(hay)) {
            return None;
        }
        let spans = self.leaks(hay);
        if spans.is_empty() {
            return None;
        }
        Some(redact(hay, spans))
    }

    /// A cheap first look at short texts (header values): true when no mask run and no
    /// secret's head or tail anchor occurs, so no leak can. Plain `memchr` scans, cheaper than
    /// `memmem`'s searcher setup on a few dozen bytes (about 360 instructions per header value
    /// instead of 590), dearer on longer texts, where letters recur.
    fn surely_clean(&self, hay: &[u8]) -> bool {
        if memchr::memchr2(b'*', 0xE2, hay).is_some()
            || memchr::memchr_iter(b'.', hay).any(|i| hay[i..].starts_with(b"..."))
        {
            return false;
        }
        self.0.iter().all(|s| {
            let t = &s.text[..];
            let head = &t[..t.len().min(MIN_FRAGMENT)];
            let tail = &t[t.len() - head.len()..];
            !contains(hay, head) && !contains(hay, tail)
        })
    }

    /// Where `hay` shows a secret or a recognisable part of one (unsorted, may overlap).
    fn leaks(&self, hay: &[u8]) -> Vec<Range<usize>> {
        let mut spans = Vec::new();
        for s in self.0.iter() {
            let t = &s.text[..];
            match (&s.head, &s.tail) {
                (Some(head), Some(tail)) => {
                    for p in head.find_iter(hay) {
                        spans.push(p..p + common_prefix(&hay[p..], t));
                    }
                    for q in tail.find_iter(hay) {
                        let end = q + MIN_FRAGMENT;
                        spans.push(end - common_suffix(&hay[..end], t)..end);
                    }
                }
                _ => spans.extend(s.whole.find_iter(hay).map(|p| p..p + t.len())),
            }
        }
        self.masked(hay, &mut spans);
        spans
    }

    /// Masked echoes: a run of mask characters (`**`, `...`, `…`, `•`) with a prefix of a
    /// secret just before it and/or a suffix of it just after.
    fn masked(&self, hay: &[u8], spans: &mut Vec<Range<usize>>) {
        let mut at = 0;
        while let Some(found) = memchr::memchr3(b'*', b'.', 0xE2, &hay[at..]) {
            let start = at + found;
            let (end, is_mask) = mask_run(hay, start);
            at = end.max(start + 1);
            if !is_mask {
                continue;
            }
            let before = &hay[key_run_start(hay, start)..start];
            let after = &hay[end..key_run_end(hay, end)];
            // Short secrets are only ever matched whole.
            for s in self.0.iter().filter(|s| s.head.is_some()) {
                let t = &s.text[..];
                let l = longest_suffix_that_starts(before, t);
                let r = longest_prefix_that_ends(after, t);
                let shown = l + r;
                let recognised = if l > 0 && r > 0 {
                    shown >= MIN_MASKED_REVEAL
                } else {
                    shown >= MIN_ONE_SIDED
                };
                if recognised {
                    spans.push(start - l..end + r);
                }
            }
        }
    }
}

/// Scrubs a stream chunk by chunk. A chunk's trailing word, which the next chunk may continue,
/// is held back until that chunk (or the end) arrives; a chunk that ends on a line break, as
/// server-sent events do, goes out whole at once.
#[derive(Debug)]
pub struct StreamScrub {
    secrets: Secrets,
    carry: BytesMut,
}

impl StreamScrub {
    pub fn new(secrets: Secrets) -> Self {
        Self {
            secrets,
            carry: BytesMut::new(),
        }
    }

    /// What of `chunk` (after what was held back) can go out now, scrubbed. Takes no copy
    /// when nothing is held back and nothing is redacted.
    pub fn feed(&mut self, chunk: Bytes) -> Bytes {
        if self.secrets.is_empty() {
            return chunk;
        }
        let joined = if self.carry.is_empty() {
            chunk
        } else {
            let mut b = std::mem::take(&mut self.carry);
            b.extend_from_slice(&chunk);
            b.freeze()
        };
        let cut = joined
            .iter()
            .rposition(|&b| matches!(b, b'\n' | b'\r' | b' ' | b'"' | b','))
            .map_or(0, |i| i + 1);
        // A long run without a break is held back only as far as a secret could reach.
        let hold = self.secrets.longest() * 2 + 64;
        let cut = cut.max(joined.len().saturating_sub(hold));
        if cut < joined.len() {
            self.carry.extend_from_slice(&joined[cut..]);
        }
        self.secrets.scrub_bytes(joined.slice(..cut))
    }

    /// Whatever was held back, scrubbed.
    pub fn finish(&mut self) -> Bytes {
        let rest = std::mem::take(&mut self.carry).freeze();
        self.secrets.scrub_bytes(rest)
    }
}

/// Characters a key (and the word around an echoed key) is made of.
fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/')
}

/// The end of the run of mask characters starting at `start`, and whether it masks: two or more
/// `*`/`•`, three or more `.`, or any `…`.
fn mask_run(hay: &[u8], start: usize) -> (usize, bool) {
    let (mut i, mut stars, mut dots, mut ellipsis) = (start, 0, 0, false);
    while i < hay.len() {
        match hay[i] {
            b'*' => stars += 1,
            b'.' => dots += 1,
            0xE2 if hay[i..].starts_with("…".as_bytes()) => {
                ellipsis = true;
                i += 3;
                continue;
            }
            0xE2 if hay[i..].starts_with("•".as_bytes()) => {
                stars += 1;
                i += 3;
                continue;
            }
            _ => break,
        }
        i += 1;
    }
    // A sentence's full stop after a masked key is not part of the mask.
    let trailing = hay[start..i]
        .iter()
        .rev()
        .take_while(|&&b| b == b'.')
        .count();
    if trailing < 3 && trailing < i - start {
        i -= trailing;
    }
    (i, stars >= 2 || dots >= 3 || ellipsis)
}

fn key_run_start(hay: &[u8], end: usize) -> usize {
    hay[..end]
        .iter()
        .rposition(|&b| !is_key_byte(b))
        .map_or(0, |i| i + 1)
}

fn key_run_end(hay: &[u8], start: usize) -> usize {
    hay[start..]
        .iter()
        .position(|&b| !is_key_byte(b))
        .map_or(hay.len(), |i| start + i)
}

/// The length of the longest suffix of `word` that `secret` starts with (at least 2, else 0).
fn longest_suffix_that_starts(word: &[u8], secret: &[u8]) -> usize {
    let from = word.len().saturating_sub(secret.len());
    (from..word.len().saturating_sub(1))
        .find(|&i| secret.starts_with(&word[i..]))
        .map_or(0, |i| word.len() - i)
}

/// The length of the longest prefix of `word` that `secret` ends with (at least 2, else 0).
fn longest_prefix_that_ends(word: &[u8], secret: &[u8]) -> usize {
    (2..=word.len().min(secret.len()))
        .rev()
        .find(|&j| secret.ends_with(&word[..j]))
        .unwrap_or(0)
}

/// Whether `needle` (non-empty) occurs in `hay`, by its first byte.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memchr_iter(needle[0], hay).any(|i| hay[i..].starts_with(needle))
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

/// `hay` with the (merged) spans replaced by [`REDACTED`].
fn redact(hay: &[u8], mut spans: Vec<Range<usize>>) -> Vec<u8> {
    spans.sort_unstable_by_key(|r| r.start);
    let mut out = Vec::with_capacity(hay.len());
    let mut at = 0;
    for r in spans {
        if r.end <= at {
            continue;
        }
        if r.start >= at {
            out.extend_from_slice(&hay[at..r.start]);
            out.extend_from_slice(REDACTED.as_bytes());
        }
        at = r.end;
    }
    out.extend_from_slice(&hay[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-canary-7f3a9c2e41b8d6f05e9a";

    fn secrets() -> Secrets {
        Secrets::new([format!("Bearer {KEY}")])
    }

    fn scrub(text: &str) -> String {
        secrets().scrub_str(text).into_owned()
    }

    #[test]
    fn the_whole_key_is_redacted_wherever_it_appears() {
        assert_eq!(
            scrub(&format!("Incorrect API key provided: {KEY}.")),
            "Incorrect API key provided: [redacted]."
        );
        assert_eq!(
            scrub(&format!(
                "{{\"auth\":\"Bearer {KEY}\",\"k\":\"{KEY}{KEY}\"}}"
            )),
            "{\"auth\":\"Bearer [redacted]\",\"k\":\"[redacted][redacted]\"}"
        );
    }

    #[test]
    fn openai_style_masked_echoes_are_redacted() {
        for echo in [
            "sk-can***********************05e9a",
            "sk-canary-7f************e9a",
            "sk-ca...e9a",
            "sk-canar…9a",
            "sk-can•••••••••05e9a",
            "sk-canary-7f3a****",
            "****c2e41b8d6f05e9a",
        ] {
            let got = scrub(&format!(
                "Incorrect API key provided: {echo}. You can find your API key at https://x."
            ));
            assert_eq!(
                got,
                "Incorrect API key provided: [redacted]. You can find your API key at https://x.",
                "{echo}"
            );
        }
    }

    #[test]
    fn unmasked_prefixes_and_suffixes_of_eight_or_more_are_redacted() {
        assert_eq!(scrub("key sk-canary-7f3a is bad"), "key [redacted] is bad");
        assert_eq!(scrub("ends with 2e41b8d6f05e9a"), "ends with [redacted]");
        assert_eq!(scrub("x=sk-canary"), "x=[redacted]");
    }

    #[test]
    fn ordinary_text_is_left_alone_and_not_copied() {
        let s = secrets();
        for text in [
            "**Paris** is the capital... of France.",
            "sk-... and sk-*** are placeholders",
            "a * b ** c",
            "9a9a 05e9a …",
            "",
        ] {
            assert!(
                matches!(s.scrub_str(text), Cow::Borrowed(_)),
                "{text:?} was changed to {:?}",
                s.scrub_str(text)
            );
        }
        let b = Bytes::from_static(b"{\"choices\":[]}");
        assert_eq!(s.scrub_bytes(b.clone()).as_ptr(), b.as_ptr());
    }

    #[test]
    fn short_secrets_are_only_redacted_whole() {
        let s = Secrets::new(["abcdef".to_owned(), "xyz".to_owned()]);
        assert_eq!(
            s.scrub_str("k=abcdef; abc***ef; xyz"),
            "k=[redacted]; abc***ef; xyz"
        );
    }

    #[test]
    fn header_values_are_scrubbed() {
        let s = secrets();
        let v = HeaderValue::from_str(&format!("key={KEY}")).unwrap();
        assert_eq!(s.scrub_header(&v).unwrap(), "key=[redacted]");
        assert_eq!(s.scrub_header(&HeaderValue::from_static("req_123")), None);
    }

    #[test]
    fn non_utf8_bodies_are_scrubbed_too() {
        let mut body = b"\xff\xfe ".to_vec();
        body.extend_from_slice(KEY.as_bytes());
        let out = secrets().scrub_bytes(Bytes::from(body));
        assert_eq!(&out[..], b"\xff\xfe [redacted]");
    }

    #[test]
    fn a_key_split_across_stream_chunks_is_still_redacted() {
        let mut st = StreamScrub::new(secrets());
        let mut out = Vec::new();
        let text = format!("data: {{\"error\":\"bad key {KEY}\"}}\n\ndata: [DONE]\n\n");
        for chunk in text.as_bytes().chunks(7) {
            out.extend_from_slice(&st.feed(Bytes::copy_from_slice(chunk)));
        }
        out.extend_from_slice(&st.finish());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "data: {\"error\":\"bad key [redacted]\"}\n\ndata: [DONE]\n\n"
        );
        // Whole events go out at once.
        let ev = Bytes::from_static(b"data: {\"a\":1}\n\n");
        assert_eq!(st.feed(ev.clone()), ev);
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        assert_eq!(format!("{:?}", secrets()), "Secrets(1 redacted)");
    }
}
