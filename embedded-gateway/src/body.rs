//! Owns the buffered request body: read once with a size limit counted while reading, parsed
//! at most once (JSON or form), edited in place (`hide_credentials`), re-encoded only if edited.

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

#[derive(Debug)]
enum Parsed {
    NotYet,
    Json(Value),
    Form(Vec<(String, String)>),
    Opaque,
}

/// A fully read request body.
#[derive(Debug)]
pub struct RequestBody {
    raw: Bytes,
    parsed: Parsed,
    dirty: bool,
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds {0} bytes")]
    TooLarge(u64),
    #[error("request body could not be read")]
    Read,
}

impl RequestBody {
    pub fn new(raw: Bytes) -> Self {
        Self {
            raw,
            parsed: Parsed::NotYet,
            dirty: false,
        }
    }

    /// Reads `body`, failing as soon as more than `limit` bytes arrive (0 = unlimited).
    pub async fn read(
        mut body: Incoming,
        declared: Option<u64>,
        limit: u64,
    ) -> Result<Self, BodyError> {
        if limit > 0 && declared.is_some_and(|n| n > limit) {
            return Err(BodyError::TooLarge(limit));
        }
        let mut buf: Option<bytes::BytesMut> = None;
        let mut first: Option<Bytes> = None;
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyError::Read)?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            total += data.len() as u64;
            if limit > 0 && total > limit {
                return Err(BodyError::TooLarge(limit));
            }
            match (&mut buf, first.take()) {
                (None, None) => first = Some(data),
                (None, Some(f)) => {
                    let mut b = bytes::BytesMut::with_capacity(f.len() + data.len());
                    b.extend_from_slice(&f);
                    b.extend_from_slice(&data);
                    buf = Some(b);
                }
                (Some(b), _) => b.extend_from_slice(&data),
            }
        }
        let raw = match (buf, first) {
            (Some(b), _) => b.freeze(),
            (None, Some(f)) => f,
            (None, None) => Bytes::new(),
        };
        Ok(Self::new(raw))
    }

    fn parse(&mut self, headers: &HeaderMap) {
        if !matches!(self.parsed, Parsed::NotYet) {
            return;
        }
        let ct = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_ascii_lowercase();
        self.parsed = if ct.starts_with("application/x-www-form-urlencoded") {
            Parsed::Form(
                url::form_urlencoded::parse(&self.raw)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            )
        } else if ct.contains("json") {
            serde_json::from_slice(&self.raw)
                .map(Parsed::Json)
                .unwrap_or(Parsed::Opaque)
        } else {
            Parsed::Opaque
        };
    }

    /// A top-level field of a JSON object or form body. Repeated form fields come back as an
    /// array (a duplicate).
    pub fn field(&mut self, headers: &HeaderMap, name: &str) -> Option<Value> {
        self.parse(headers);
        match &self.parsed {
            Parsed::Json(Value::Object(m)) => m.get(name).cloned(),
            Parsed::Form(pairs) => {
                let values: Vec<Value> = pairs
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| Value::String(v.clone()))
                    .collect();
                match values.len() {
                    0 => None,
                    1 => values.into_iter().next(),
                    _ => Some(Value::Array(values)),
                }
            }
            _ => None,
        }
    }

    pub fn remove_field(&mut self, headers: &HeaderMap, name: &str) {
        self.parse(headers);
        let removed = match &mut self.parsed {
            Parsed::Json(Value::Object(m)) => m.shift_remove(name).is_some(),
            Parsed::Form(pairs) => {
                let before = pairs.len();
                pairs.retain(|(k, _)| k != name);
                pairs.len() != before
            }
            _ => false,
        };
        self.dirty |= removed;
    }

    /// The bytes to send upstream, re-encoded only when a field was removed.
    pub fn into_bytes(self) -> Bytes {
        if !self.dirty {
            return self.raw;
        }
        match self.parsed {
            Parsed::Json(v) => serde_json::to_vec(&v).map(Bytes::from).unwrap_or(self.raw),
            Parsed::Form(pairs) => url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
                .into(),
            _ => self.raw,
        }
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}
