//! Owns reading state files: files, directories (walked for `.yaml`, `.yml` and `.json`,
//! sorted) and `-` for stdin; templating; parsing; the schema check; typing into `Document`.
//!
//! This is the only module that calls `serde_yaml` (deprecated upstream), so it can be swapped.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::document::Document;
use super::position::Positions;
use super::template::{self, Env, Syntax};
use super::{Diagnostic, Source, schema};

/// How templates are expanded.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Stand placeholders in for `DECK_` variables instead of reading the environment.
    pub mock_env: bool,
    /// References to entities no file defines are left for the gateway to resolve
    /// (`diff`/`apply`/`sync`) instead of being problems (`validate`).
    pub live_references: bool,
}

/// One state file, schema-checked and typed.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub source: Source,
    pub document: Document,
}

/// Display name used for stdin.
pub const STDIN: &str = "<stdin>";

/// What reading the inputs produced.
#[derive(Debug, Default)]
pub struct ReadAll {
    /// The typed files, in input order.
    pub parsed: Vec<Parsed>,
    /// Every problem found so far.
    pub diags: Vec<Diagnostic>,
    /// True when every input yielded a typed document (so cross-file checks are meaningful).
    pub complete: bool,
    /// Display names of every input, in order (for sorting problems).
    pub names: Vec<String>,
}

/// Reads, expands, parses and schema-checks every input. A file with schema problems is still
/// typed, with the offending fields left out, so later checks can report their problems too.
pub fn read_all(inputs: &[PathBuf], opts: &LoadOptions) -> ReadAll {
    let mut out = ReadAll::default();
    let inputs = gather(inputs, &mut out.diags);
    out.complete = out.diags.is_empty();
    for (name, syntax, text) in inputs {
        out.names.push(name.clone());
        let (p, mut d) = parse_one(name, syntax, text, opts);
        out.complete &= p.is_some();
        out.parsed.extend(p);
        out.diags.append(&mut d);
    }
    out
}

/// Every input as (display name, syntax, text), directories expanded in sorted order.
fn gather(inputs: &[PathBuf], diags: &mut Vec<Diagnostic>) -> Vec<(String, Syntax, String)> {
    let mut out = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => {
                    let text = without_bom(text);
                    let syntax = if text.trim_start().starts_with(['{', '[']) {
                        Syntax::Json
                    } else {
                        Syntax::Yaml
                    };
                    out.push((STDIN.to_owned(), syntax, text));
                }
                Err(e) => diags.push(file_diag(STDIN, format!("cannot read: {e}"))),
            }
            continue;
        }
        let files = if input.is_dir() {
            let found = walk(input);
            if found.is_empty() {
                let msg = "no .yaml, .yml or .json state files in this directory";
                diags.push(file_diag(&input.display().to_string(), msg.to_owned()));
            }
            found
        } else {
            vec![input.clone()]
        };
        for file in files {
            let name = file.display().to_string();
            match std::fs::read_to_string(&file) {
                Ok(text) => out.push((name, syntax_of(&file), without_bom(text))),
                Err(e) => diags.push(file_diag(&name, format!("cannot read: {e}"))),
            }
        }
    }
    out
}

/// Editors do not show a byte-order mark, so positions are counted without it.
fn without_bom(text: String) -> String {
    match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    }
}

fn syntax_of(path: &Path) -> Syntax {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("json") => Syntax::Json,
        _ => Syntax::Yaml,
    }
}

/// State files under `dir`, recursively, sorted by path.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            out.extend(walk(&p));
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
    out
}

fn file_diag(name: &str, message: String) -> Diagnostic {
    Diagnostic {
        file: name.to_owned(),
        line: 0,
        col: 0,
        path: String::new(),
        message,
    }
}

fn parse_one(
    name: String,
    syntax: Syntax,
    text: String,
    opts: &LoadOptions,
) -> (Option<Parsed>, Vec<Diagnostic>) {
    match source_and_value(name, syntax, text, opts) {
        Ok((source, mut value)) => {
            if opts.mock_env {
                type_mock_values(&source, &mut value);
            }
            typed(source, value)
        }
        Err(d) => (None, d),
    }
}

fn source_and_value(
    name: String,
    syntax: Syntax,
    text: String,
    opts: &LoadOptions,
) -> Result<(Source, Value), Vec<Diagnostic>> {
    let lookup = |k: &str| std::env::var(k).ok();
    let env = if opts.mock_env {
        Env::Mock
    } else {
        Env::Lookup(&lookup)
    };
    let expanded = template::expand(&text, syntax, &env).map_err(|errs| {
        errs.into_iter()
            .map(|e| Diagnostic {
                file: name.clone(),
                line: e.line,
                col: e.col,
                path: String::new(),
                message: e.message,
            })
            .collect::<Vec<_>>()
    })?;
    let positions = Positions::of(&expanded.text);
    let source = Source {
        name,
        original: text,
        expanded,
        positions,
    };
    let at = |offset: usize, path: &str, message: String| {
        let (line, col) = source.line_col(offset);
        Diagnostic {
            file: source.name.clone(),
            line,
            col,
            path: path.to_owned(),
            message,
        }
    };
    let repeated = &source.positions.duplicates;
    if !repeated.is_empty() {
        let message = || "key written twice in the same mapping".to_owned();
        return Err(repeated.iter().map(|(p, o)| at(*o, p, message())).collect());
    }
    let value = parse_value(&source.expanded.text, syntax)
        .map_err(|(offset, message)| vec![at(offset, "", message)])?;
    Ok((source, normalize_top(value)))
}

/// An empty file is an empty document; `_format_version: 3.0` unquoted (a YAML number, as
/// decK files often write it) reads as the string it looks like.
fn normalize_top(value: Value) -> Value {
    let mut value = if value.is_null() {
        Value::Object(Default::default())
    } else {
        value
    };
    if let Some(v) = value.get_mut("_format_version")
        && v.is_number()
    {
        *v = Value::String(v.to_string());
    }
    value
}

/// With `--mock-env`, a plain `${{ env "DECK_X" }}` stands for its name, a string; where the
/// schema wants a number or a boolean it becomes decK's typed placeholder (42, false) instead,
/// since the real value would be typed by YAML. Quoted templates stay strings.
fn type_mock_values(source: &Source, value: &mut Value) {
    let is_placeholder = |v: &Value| {
        v.as_str().is_some_and(|s| {
            s.len() > template::PREFIX.len()
                && s.starts_with(template::PREFIX)
                && s.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
    };
    for e in schema::validate(value) {
        let placeholder = match e.message.as_str() {
            m if m.contains("integer") || m.contains("number") => Value::from(42),
            m if m.contains("boolean") => Value::Bool(false),
            _ => continue,
        };
        if !get_path(value, &e.path).is_some_and(is_placeholder) {
            continue;
        }
        // Only when the template is written unquoted after the key, as in `port: ${{ … }}`.
        let d = source.diag(&e.path, "");
        let line = source
            .original
            .lines()
            .nth(d.line.saturating_sub(1))
            .unwrap_or("");
        let after_key = line.split_once(':').map_or("", |(_, v)| v).trim_start();
        if (after_key.starts_with("${{") || after_key.starts_with("$<<"))
            && let Some(slot) = get_path_mut(value, &e.path)
        {
            *slot = placeholder;
        }
    }
}

fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = value;
    for seg in split_path(path) {
        node = match (node, &seg) {
            (Value::Object(m), Seg::Key(k)) => m.get(k.as_str())?,
            (Value::Array(a), Seg::Index(i)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

fn get_path_mut<'a>(value: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut node = value;
    for seg in split_path(path) {
        node = match (node, &seg) {
            (Value::Object(m), Seg::Key(k)) => m.get_mut(k.as_str())?,
            (Value::Array(a), Seg::Index(i)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Schema-checks a value and types it, leaving out fields with schema problems.
fn typed(source: Source, mut value: Value) -> (Option<Parsed>, Vec<Diagnostic>) {
    let errors = schema::validate(&value);
    let mut diags: Vec<Diagnostic> = errors
        .iter()
        .map(|e| source.diag(&e.path, e.message.clone()))
        .collect();
    for e in &errors {
        remove_path(&mut value, &e.path);
    }
    match serde_json::from_value::<Document>(value) {
        Ok(document) => (Some(Parsed { source, document }), diags),
        Err(e) => {
            if diags.is_empty() {
                diags.push(source.diag("", e.to_string()));
            }
            (None, diags)
        }
    }
}

/// Removes the field or item at a path (`services[0].retriez`) from a value, if present.
fn remove_path(value: &mut Value, path: &str) {
    let segments = split_path(path);
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut node = value;
    for seg in parents {
        let next = match (node, seg) {
            (Value::Object(m), Seg::Key(k)) => m.get_mut(k.as_str()),
            (Value::Array(a), Seg::Index(i)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return,
        }
    }
    match (node, last) {
        (Value::Object(m), Seg::Key(k)) => {
            m.remove(k.as_str());
        }
        (Value::Array(a), Seg::Index(i)) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

enum Seg {
    Key(String),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(b) = rest.find('[') {
            if b > 0 {
                out.push(Seg::Key(rest[..b].to_owned()));
            }
            rest = &rest[b..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let end = stripped.find(']').unwrap_or(stripped.len());
                if let Ok(i) = stripped[..end].parse() {
                    out.push(Seg::Index(i));
                }
                rest = stripped.get(end + 1..).unwrap_or("");
            }
        } else {
            out.push(Seg::Key(rest.to_owned()));
        }
    }
    out
}

/// Parses YAML or JSON text into a value. A syntax error gives its byte offset and message.
pub fn parse_value(text: &str, syntax: Syntax) -> Result<Value, (usize, String)> {
    match syntax {
        Syntax::Json => serde_json::from_str(text).map_err(|e| {
            let offset = offset_of(text, e.line(), e.column());
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            (offset, msg)
        }),
        Syntax::Yaml => {
            let located = |e: serde_yaml::Error| {
                let offset = e.location().map_or(0, |l| l.index());
                (offset, strip_first_location(&e.to_string()))
            };
            let mut v: serde_yaml::Value = serde_yaml::from_str(text).map_err(located)?;
            // `<<: *anchor` merge keys, as Go's YAML (and so decK) applies them.
            v.apply_merge().map_err(located)?;
            serde_json::to_value(v).map_err(|e| (0, e.to_string()))
        }
    }
}

/// Renders a document as YAML.
pub fn to_yaml(doc: &Document) -> Result<String, String> {
    value_to_yaml(doc)
}

/// Renders any serialisable value as YAML (command output such as `get -o yaml`).
pub fn value_to_yaml<T: serde::Serialize>(value: &T) -> Result<String, String> {
    serde_yaml::to_string(value).map_err(|e| e.to_string())
}

/// Byte offset of a 1-based line and column.
fn offset_of(text: &str, line: usize, col: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let rest = &text[line_start.min(text.len())..];
    let col_bytes: usize = rest
        .chars()
        .take(col.saturating_sub(1))
        .map(char::len_utf8)
        .sum();
    line_start + col_bytes
}

/// `did not find expected key at line 3 column 5, while …` → `did not find expected key, while …`
/// (the location is printed in front, mapped back to the original text).
fn strip_first_location(msg: &str) -> String {
    let Some(at) = msg.find(" at line ") else {
        return msg.to_owned();
    };
    let rest = &msg[at + " at line ".len()..];
    let skip = rest
        .find(" column ")
        .map(|c| {
            let after = &rest[c + " column ".len()..];
            c + " column ".len() + after.bytes().take_while(u8::is_ascii_digit).count()
        })
        .unwrap_or(0);
    format!("{}{}", &msg[..at], &rest[skip..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_errors_give_their_offset_and_a_message_without_the_raw_location() {
        let text = "a: 1\nb: [1, 2\n";
        let (offset, msg) = parse_value(text, Syntax::Yaml).unwrap_err();
        assert_eq!(template::line_col(text, offset), (3, 1));
        assert!(
            msg.starts_with("did not find expected ',' or ']', while"),
            "{msg}"
        );
    }

    #[test]
    fn json_errors_give_their_offset() {
        let text = "{\n  \"a\": 1,\n  \"b\" 2\n}";
        let (offset, _) = parse_value(text, Syntax::Json).unwrap_err();
        assert_eq!(template::line_col(text, offset).0, 3);
    }

    #[test]
    fn remove_path_drops_the_named_field() {
        let mut v = serde_json::json!({"services": [{"name": "a", "retriez": 1}]});
        remove_path(&mut v, "services[0].retriez");
        assert_eq!(v, serde_json::json!({"services": [{"name": "a"}]}));
    }

    #[test]
    fn strip_first_location_keeps_the_rest() {
        assert_eq!(
            strip_first_location("did not find expected key at line 3 column 5, while parsing"),
            "did not find expected key, while parsing"
        );
    }
}
