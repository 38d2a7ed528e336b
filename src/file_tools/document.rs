//! Owns reading and writing decK files for the file tools: YAML or JSON from a path or stdin
//! (`-`), written as YAML or JSON to a path or stdout (`-`).

use std::io::{Read as _, Write as _};
use std::path::Path;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("failed to read input file '{file}'; {reason}")]
    Read { file: String, reason: String },
    #[error("failed to parse '{file}'; {reason}")]
    Parse { file: String, reason: String },
    #[error("'{file}' is not a decK file: its top level must be an object")]
    NotObject { file: String },
    #[error("cannot write '{file}'; {reason}")]
    Write { file: String, reason: String },
}

/// Output format of the file tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Yaml,
    Json,
}

/// Reads a YAML or JSON document whose top level is an object.
pub fn read(file: &str) -> Result<Value, DocumentError> {
    let text = if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| DocumentError::Read {
                file: file.to_owned(),
                reason: e.to_string(),
            })?;
        s
    } else {
        std::fs::read_to_string(Path::new(file)).map_err(|e| DocumentError::Read {
            file: file.to_owned(),
            reason: e.to_string(),
        })?
    };
    parse(file, &text)
}

/// Parses YAML (which includes JSON) into an object.
pub fn parse(file: &str, text: &str) -> Result<Value, DocumentError> {
    let value: Value = if text.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_yaml::from_str(text).map_err(|e| DocumentError::Parse {
            file: file.to_owned(),
            reason: e.to_string(),
        })?
    };
    if value.is_object() {
        Ok(value)
    } else {
        Err(DocumentError::NotObject {
            file: file.to_owned(),
        })
    }
}

/// Serializes a document.
pub fn serialize(value: &Value, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
            s.push('\n');
            s
        }
        OutputFormat::Yaml => serde_yaml::to_string(value).unwrap_or_default(),
    }
}

/// Writes a document to `file` (`-` is stdout).
pub fn write(file: &str, value: &Value, format: OutputFormat) -> Result<(), DocumentError> {
    let text = serialize(value, format);
    let err = |e: std::io::Error| DocumentError::Write {
        file: file.to_owned(),
        reason: e.to_string(),
    };
    if file == "-" {
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(err)
    } else {
        std::fs::write(file, text).map_err(err)
    }
}
