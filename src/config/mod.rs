//! Owns the declarative file model: decK `_format_version: "3.0"` state files, read from files,
//! directories or stdin, env-templated, parsed, schema-checked and semantically checked, with
//! every problem located at `file:line:col` and named by its entity path.

pub mod check;
pub mod document;
pub mod extensions;
pub mod load;
pub mod position;
pub mod schema;
pub mod secrets;
pub mod sites;
pub mod template;

use std::fmt;

pub use document::Document;

/// One problem in a state file. `line` is 0 when the problem has no place inside the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub col: usize,
    /// The entity path (`services[0].routes[1].paths[0]`); empty when the problem is not in
    /// an entity (templates, syntax).
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file)?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.col)?;
        }
        if !self.path.is_empty() {
            write!(f, " {}:", self.path)?;
        }
        write!(f, " {}", self.message)
    }
}

impl Diagnostic {
    /// The problem as one JSON object: `file`, `line`, `column`, `path`, `message` (`line` and
    /// `column` are null when the problem has no place in the file, `path` when not in an entity).
    pub fn to_json(&self) -> serde_json::Value {
        let place = |n: usize| (self.line > 0).then_some(n);
        serde_json::json!({
            "file": self.file,
            "line": place(self.line),
            "column": place(self.col),
            "path": (!self.path.is_empty()).then_some(&self.path),
            "message": self.message,
        })
    }
}

/// Every problem found, in file order; displayed one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// One input after templating: its display name, original and expanded text, and positions.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub original: String,
    pub expanded: template::Expanded,
    pub positions: position::Positions,
}

impl Source {
    /// A problem at `path`, located where the path (or its nearest ancestor) is written.
    pub fn diag(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        let (line, col) = match self.positions.offset(path) {
            Some(o) => self.line_col(o),
            None => (0, 0),
        };
        Diagnostic {
            file: self.name.clone(),
            line,
            col,
            path: path.to_owned(),
            message: message.into(),
        }
    }

    /// Original-text line and column of a byte offset in the expanded text.
    pub fn line_col(&self, expanded_offset: usize) -> (usize, usize) {
        let o = self.expanded.original_offset(expanded_offset);
        template::line_col(&self.original, o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_read_file_line_col_path_message() {
        let d = Diagnostic {
            file: "kong.yaml".into(),
            line: 5,
            col: 5,
            path: "services[0].retriez".into(),
            message: "unknown field".into(),
        };
        assert_eq!(
            d.to_string(),
            "kong.yaml:5:5: services[0].retriez: unknown field"
        );
        let d = Diagnostic {
            line: 0,
            path: String::new(),
            ..d
        };
        assert_eq!(d.to_string(), "kong.yaml: unknown field");
        assert_eq!(
            d.to_json(),
            serde_json::json!({"file": "kong.yaml", "line": null, "column": null, "path": null, "message": "unknown field"})
        );
    }
}
