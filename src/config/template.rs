//! Owns decK's env templating: `${{ env "DECK_NAME" }}` (with `| toBool`, `| toInt`,
//! `| toFloat`) expanded over the raw file text before parsing, each value escaped for the
//! context it lands in so it can never break or change the surrounding YAML or JSON (decK #616).
//!
//! Contexts: a YAML comment (not evaluated), a double-quoted scalar (YAML escapes), a
//! single-quoted scalar (rewritten as double-quoted, so any value fits), a block scalar (newlines
//! re-indented), a plain scalar (kept plain when safe, so `port: ${{ env "DECK_PORT" }}` stays an
//! integer as in decK; double-quoted otherwise), and for JSON a string (JSON escapes) or a bare
//! value (kept when it is a JSON scalar, quoted otherwise).
//!
//! `$<< env "DECK_NAME" >>` is accepted everywhere `${{ … }}` is, with the same functions and
//! escaping: Helm, Jinja and Go templates leave it alone, so a decK file can go through them.

/// The prefix every variable name must carry (decK's anti-exfiltration rule).
pub const PREFIX: &str = "DECK_";

/// Which grammar the text is in, which decides how values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Yaml,
    Json,
}

/// Where variable values come from.
pub enum Env<'a> {
    /// Real values, looked up by name.
    Lookup(&'a dyn Fn(&str) -> Option<String>),
    /// decK's mock values: the name for strings, `false` for toBool, `42` for toInt/toFloat.
    Mock,
}

/// One template problem, at a 1-based line and column of the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// The expanded text plus the map back to the original text's positions.
#[derive(Debug, Clone)]
pub struct Expanded {
    pub text: String,
    /// Replaced spans, in order: (expanded start, expanded end, original start, original end).
    spans: Vec<(usize, usize, usize, usize)>,
}

impl Expanded {
    /// Maps a byte offset in the expanded text to the byte offset in the original text. Offsets
    /// inside a substituted span map to the start of the template that produced it.
    pub fn original_offset(&self, expanded: usize) -> usize {
        let mut delta: isize = 0;
        for &(es, ee, os, oe) in &self.spans {
            if expanded < es {
                break;
            }
            if expanded < ee {
                return os;
            }
            delta = oe as isize - ee as isize;
        }
        (expanded as isize + delta).max(0) as usize
    }
}

/// A value produced by a template: text, or a typed value from a pipe.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
        }
    }
}

/// Expands every template in `text`. Returns every problem found, not just the first.
pub fn expand(text: &str, syntax: Syntax, env: &Env<'_>) -> Result<Expanded, Vec<TemplateError>> {
    let mut x = Expander {
        src: text,
        env,
        out: String::with_capacity(text.len()),
        spans: Vec::new(),
        errors: Vec::new(),
    };
    match syntax {
        Syntax::Yaml => x.yaml(),
        Syntax::Json => x.json(),
    }
    if x.errors.is_empty() {
        Ok(Expanded {
            text: x.out,
            spans: x.spans,
        })
    } else {
        Err(x.errors)
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The two delimiter pairs: decK's `${{ … }}`, and `$<< … >>`, which Helm, Jinja and Go
/// templates leave alone, so a file can pass through one of them before Gantry reads it.
const DELIMITERS: [(&str, &str); 2] = [("${{", "}}"), ("$<<", ">>")];
/// Both openers have the same length.
const OPEN_LEN: usize = 3;

struct Expander<'a, 'e> {
    src: &'a str,
    env: &'e Env<'e>,
    out: String,
    spans: Vec<(usize, usize, usize, usize)>,
    errors: Vec<TemplateError>,
}

impl Expander<'_, '_> {
    fn at(&self, i: usize, s: &str) -> bool {
        self.src[i..].starts_with(s)
    }

    /// The closing delimiter when a template opens at `i`.
    fn opens(&self, i: usize) -> Option<&'static str> {
        DELIMITERS
            .iter()
            .find(|(open, _)| self.at(i, open))
            .map(|(_, close)| *close)
    }

    fn byte(&self, i: usize) -> Option<u8> {
        self.src.as_bytes().get(i).copied()
    }

    /// Copies original text verbatim.
    fn copy(&mut self, from: usize, to: usize) {
        self.out.push_str(&self.src[from..to]);
    }

    /// Emits `replacement` for the original span `from..to`, recording it in the source map.
    fn replace(&mut self, from: usize, to: usize, replacement: &str) {
        let start = self.out.len();
        self.out.push_str(replacement);
        self.spans.push((start, self.out.len(), from, to));
    }

    fn error(&mut self, at: usize, message: String) {
        let (line, col) = line_col(self.src, at);
        self.errors.push(TemplateError { line, col, message });
    }

    /// The end of the template starting at `i` (just past `}}`), or the end of the line when it
    /// is not closed there.
    fn template_end(&self, i: usize) -> Result<usize, usize> {
        let close = self.opens(i).unwrap_or("}}");
        let body_start = i + OPEN_LEN;
        let line_end = self.src[body_start..]
            .find('\n')
            .map_or(self.src.len(), |n| body_start + n);
        match self.src[body_start..line_end].find(close) {
            Some(n) => Ok(body_start + n + close.len()),
            None => Err(line_end),
        }
    }

    /// Evaluates the template at `i`; returns its value (None after recording an error) and
    /// the offset just past it.
    fn evaluate(&mut self, i: usize) -> (Option<Value>, usize) {
        let open = &self.src[i..i + OPEN_LEN];
        let close = self.opens(i).unwrap_or("}}");
        let end = match self.template_end(i) {
            Ok(end) => end,
            Err(line_end) => {
                self.error(
                    i,
                    format!("template is not closed with '{close}' on the same line"),
                );
                return (None, line_end);
            }
        };
        let body = &self.src[i + OPEN_LEN..end - close.len()];
        match parse(body, open, close).and_then(|expr| expr.eval(self.env)) {
            Ok(v) => (Some(v), end),
            Err(message) => {
                self.error(i, message);
                (None, end)
            }
        }
    }

    // ----- JSON --------------------------------------------------------------------------

    fn json(&mut self) {
        let mut i = 0;
        let mut in_string = false;
        while i < self.src.len() {
            if self.opens(i).is_some() {
                let (value, end) = self.evaluate(i);
                let text = value.map(|v| json_text(&v, in_string)).unwrap_or_default();
                self.replace(i, end, &text);
                i = end;
                continue;
            }
            let c = self.byte(i).unwrap_or(0);
            if in_string && c == b'\\' {
                let n = next_char_len(self.src, i + 1);
                self.copy(i, i + 1 + n);
                i += 1 + n;
                continue;
            }
            if c == b'"' {
                in_string = !in_string;
            }
            let n = next_char_len(self.src, i);
            self.copy(i, i + n);
            i += n;
        }
    }

    // ----- YAML --------------------------------------------------------------------------

    fn yaml(&mut self) {
        let mut i = 0;
        let mut block_parent: Option<usize> = None;
        let mut flow_depth = 0usize;
        while i < self.src.len() {
            let line_end = self.src[i..].find('\n').map_or(self.src.len(), |n| i + n);
            let indent = self.src[i..line_end]
                .bytes()
                .take_while(|b| *b == b' ')
                .count();
            let blank = self.src[i..line_end].trim().is_empty();
            if let Some(parent) = block_parent {
                if blank || indent > parent {
                    i = self.block_line(i, line_end, indent);
                    continue;
                }
                block_parent = None;
            }
            let (next, block) = self.yaml_line(i, indent, &mut flow_depth);
            if block {
                block_parent = Some(indent);
            }
            i = next;
        }
    }

    /// A line of block scalar content: templates expand with their newlines re-indented.
    fn block_line(&mut self, start: usize, line_end: usize, indent: usize) -> usize {
        let mut i = start;
        while i < line_end {
            if self.opens(i).is_some() {
                let (value, end) = self.evaluate(i);
                let pad = format!("\n{}", " ".repeat(indent));
                let text = value
                    .map(|v| v.text().replace('\n', &pad))
                    .unwrap_or_default();
                self.replace(i, end, &text);
                i = end;
            } else {
                let n = next_char_len(self.src, i);
                self.copy(i, i + n);
                i += n;
            }
        }
        self.copy_newline(line_end)
    }

    fn copy_newline(&mut self, line_end: usize) -> usize {
        if line_end < self.src.len() {
            self.copy(line_end, line_end + 1);
        }
        line_end + 1
    }

    /// Scans one YAML line starting at `start` (quoted scalars may run past it). Returns where
    /// the next line starts and whether this line opens a block scalar (`|` or `>`).
    fn yaml_line(&mut self, start: usize, indent: usize, flow: &mut usize) -> (usize, bool) {
        let mut i = start + indent;
        self.copy(start, i);
        let mut expect = true;
        let mut block = false;
        loop {
            let Some(c) = self.byte(i) else {
                return (i, block);
            };
            if c == b'\n' {
                self.copy(i, i + 1);
                return (i + 1, block);
            }
            if c == b'#' && (expect || self.src[..i].ends_with([' ', '\t'])) {
                let end = self.src[i..].find('\n').map_or(self.src.len(), |n| i + n);
                self.copy(i, end);
                i = end;
                continue;
            }
            if expect {
                match c {
                    b' ' | b'\t' => {}
                    b'"' => {
                        i = self.double_quoted(i);
                        expect = false;
                        continue;
                    }
                    b'\'' => {
                        i = self.single_quoted(i);
                        expect = false;
                        continue;
                    }
                    b'|' | b'>' if *flow == 0 => block = true,
                    b'-' | b'?' | b':' if self.is_indicator(i) => {}
                    b'[' | b'{' => *flow += 1,
                    b']' | b'}' => *flow = flow.saturating_sub(1),
                    b',' if *flow > 0 => {}
                    _ => {
                        i = self.plain(i, *flow > 0);
                        expect = false;
                        continue;
                    }
                }
                self.copy(i, i + 1);
                i += 1;
                continue;
            }
            match c {
                b':' if self.is_indicator(i) => expect = true,
                b',' if *flow > 0 => expect = true,
                b']' | b'}' if *flow > 0 => *flow -= 1,
                _ => {}
            }
            let n = next_char_len(self.src, i);
            self.copy(i, i + n);
            i += n;
        }
    }

    /// `-`, `?` or `:` followed by a space, a newline or the end of the text.
    fn is_indicator(&self, i: usize) -> bool {
        matches!(self.byte(i + 1), None | Some(b' ' | b'\t' | b'\n' | b'\r'))
    }

    /// A double-quoted scalar starting at `start`; templates inside get YAML escapes.
    fn double_quoted(&mut self, start: usize) -> usize {
        self.copy(start, start + 1);
        let mut i = start + 1;
        while i < self.src.len() {
            if self.opens(i).is_some() {
                let (value, end) = self.evaluate(i);
                let text = value.map(|v| dq_escape(&v.text())).unwrap_or_default();
                self.replace(i, end, &text);
                i = end;
                continue;
            }
            let c = self.byte(i).unwrap_or(0);
            let n = if c == b'\\' {
                1 + next_char_len(self.src, i + 1)
            } else {
                next_char_len(self.src, i)
            };
            self.copy(i, (i + n).min(self.src.len()));
            i += n;
            if c == b'"' {
                break;
            }
        }
        i.min(self.src.len())
    }

    /// A single-quoted scalar starting at `start`. With no template it is copied verbatim;
    /// with one it is rewritten as the equivalent double-quoted scalar, which can hold any value.
    fn single_quoted(&mut self, start: usize) -> usize {
        let mut i = start + 1;
        let mut has_template = false;
        while i < self.src.len() {
            if self.opens(i).is_some() {
                has_template = true;
                i = self.template_end(i).unwrap_or_else(|e| e);
                continue;
            }
            if self.at(i, "''") {
                i += 2;
                continue;
            }
            if self.byte(i) == Some(b'\'') {
                i += 1;
                break;
            }
            i += next_char_len(self.src, i);
        }
        let end = i.min(self.src.len());
        if !has_template {
            self.copy(start, end);
            return end;
        }
        let body_end = if self.src[..end].ends_with('\'') && end > start + 1 {
            end - 1
        } else {
            end
        };
        let mut text = String::from("\"");
        let mut j = start + 1;
        while j < body_end {
            if self.opens(j).is_some() {
                let (value, after) = self.evaluate(j);
                text.push_str(&value.map(|v| dq_escape(&v.text())).unwrap_or_default());
                j = after;
            } else if self.at(j, "''") {
                text.push('\'');
                j += 2;
            } else {
                let n = next_char_len(self.src, j);
                match &self.src[j..j + n] {
                    "\\" => text.push_str("\\\\"),
                    "\"" => text.push_str("\\\""),
                    other => text.push_str(other),
                }
                j += n;
            }
        }
        text.push('"');
        self.replace(start, end, &text);
        end
    }

    /// A plain scalar starting at `start`, up to ` #`, `: `, the end of the line or (in flow
    /// context) `,`, `]` or `}`. Without templates it is copied; with them it is rebuilt and
    /// kept plain only when the result is a safe plain scalar.
    fn plain(&mut self, start: usize, in_flow: bool) -> usize {
        let mut i = start;
        let mut parts: Vec<Result<String, Value>> = Vec::new();
        let mut literal = String::new();
        let mut failed = false;
        while let Some(c) = self.byte(i) {
            if self.opens(i).is_some() {
                let (value, end) = self.evaluate(i);
                if !literal.is_empty() {
                    parts.push(Ok(std::mem::take(&mut literal)));
                }
                match value {
                    Some(v) => parts.push(Err(v)),
                    None => failed = true,
                }
                i = end;
                continue;
            }
            let ends = c == b'\n'
                || (c == b'#' && self.src[..i].ends_with([' ', '\t']))
                || (c == b':' && self.is_indicator(i))
                || (in_flow && matches!(c, b',' | b']' | b'}'));
            if ends {
                break;
            }
            let n = next_char_len(self.src, i);
            literal.push_str(&self.src[i..i + n]);
            i += n;
        }
        // Trailing spaces before a comment or the line end are not part of the scalar.
        let trailing = literal.len() - literal.trim_end().len();
        let end = i - trailing;
        literal.truncate(literal.len() - trailing);
        if !literal.is_empty() {
            parts.push(Ok(literal));
        }
        if !parts.iter().any(Result::is_err) && !failed {
            self.copy(start, end);
            return end;
        }
        let text = plain_text(&parts, in_flow);
        self.replace(start, end, &text);
        end
    }
}

/// The YAML text for a plain scalar built from literal parts and template values.
fn plain_text(parts: &[Result<String, Value>], in_flow: bool) -> String {
    if let [Err(v)] = parts
        && !matches!(v, Value::Str(_))
    {
        return v.text();
    }
    let joined: String = parts
        .iter()
        .map(|p| match p {
            Ok(s) => s.clone(),
            Err(v) => v.text(),
        })
        .collect();
    if is_safe_plain(&joined, in_flow) {
        joined
    } else {
        format!("\"{}\"", dq_escape(&joined))
    }
}

/// True when `s` can stand as a YAML plain scalar and read back as the same text (modulo
/// YAML's own typing of numbers and booleans, which decK relies on for untyped templates).
/// Text YAML would read as null is quoted: a variable never means "absent".
fn is_safe_plain(s: &str, in_flow: bool) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if matches!(s, "~" | "null" | "Null" | "NULL") {
        return false;
    }
    if s.trim() != s || s.chars().any(|c| c.is_control()) {
        return false;
    }
    let indicator = "-?:,[]{}#&*!|>'\"%@`".contains(first);
    let dash_ok =
        matches!(first, '-' | '?' | ':') && s.chars().nth(1).is_some_and(|c| !c.is_whitespace());
    if indicator && !dash_ok {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    !(in_flow && s.contains([',', '[', ']', '{', '}']))
}

/// Escapes text as the body of a YAML double-quoted scalar.
fn dq_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The JSON text for a value: string content inside a string, else a JSON scalar.
fn json_text(v: &Value, in_string: bool) -> String {
    let quoted = serde_json::Value::String(v.text()).to_string();
    if in_string {
        return quoted[1..quoted.len() - 1].to_owned();
    }
    match v {
        Value::Str(s) => match serde_json::from_str::<serde_json::Value>(s) {
            Ok(j) if j.is_number() || j.is_boolean() => s.trim().to_owned(),
            _ => quoted,
        },
        other => other.text(),
    }
}

fn next_char_len(s: &str, i: usize) -> usize {
    s.get(i..)
        .and_then(|r| r.chars().next())
        .map_or(1, char::len_utf8)
}

// ----- the expression language: `env "NAME" [| toBool | toInt | toFloat]` -----------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pipe {
    Bool,
    Int,
    Float,
}

#[derive(Debug, PartialEq)]
struct Expr {
    name: String,
    pipes: Vec<Pipe>,
}

const USAGE: &str = r#"expected `env "DECK_NAME"`, optionally piped to toBool, toInt or toFloat"#;

fn parse(body: &str, open: &str, close: &str) -> Result<Expr, String> {
    let tokens = tokenize(body)?;
    let mut it = tokens.into_iter();
    let unsupported = || format!("unsupported template '{open}{body}{close}': {USAGE}");
    match it.next() {
        Some(Token::Ident(f)) if f == "env" => {}
        Some(Token::Ident(f)) if !matches!(f.as_str(), "toBool" | "toInt" | "toFloat") => {
            return Err(format!("function \"{f}\" not defined: {USAGE}"));
        }
        _ => return Err(unsupported()),
    }
    let Some(Token::Str(name)) = it.next() else {
        return Err(unsupported());
    };
    let mut pipes = Vec::new();
    while let Some(t) = it.next() {
        let (Token::Pipe, Some(Token::Ident(f))) = (t, it.next()) else {
            return Err(unsupported());
        };
        pipes.push(match f.as_str() {
            "toBool" => Pipe::Bool,
            "toInt" => Pipe::Int,
            "toFloat" => Pipe::Float,
            other => return Err(format!("function \"{other}\" not defined: {USAGE}")),
        });
    }
    Ok(Expr { name, pipes })
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Pipe,
}

fn tokenize(body: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '|' => {
                chars.next();
                tokens.push(Token::Pipe);
            }
            '"' | '`' => {
                chars.next();
                tokens.push(Token::Str(string_literal(&mut chars, c)?));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut ident = String::new();
                while let Some(&c) = chars.peek().filter(|c| c.is_alphanumeric() || **c == '_') {
                    ident.push(c);
                    chars.next();
                }
                tokens.push(Token::Ident(ident));
            }
            other => return Err(format!("unexpected '{other}' in template: {USAGE}")),
        }
    }
    Ok(tokens)
}

/// A Go string literal after its opening quote: `"…"` with escapes, or a raw `` `…` ``.
fn string_literal(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    quote: char,
) -> Result<String, String> {
    let mut s = String::new();
    while let Some(c) = chars.next() {
        match c {
            c if c == quote => return Ok(s),
            '\\' if quote == '"' => match chars.next() {
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some(c @ ('\\' | '"')) => s.push(c),
                _ => return Err("unsupported escape in template string".to_owned()),
            },
            c => s.push(c),
        }
    }
    Err("unterminated string in template".to_owned())
}

impl Expr {
    fn eval(&self, env: &Env<'_>) -> Result<Value, String> {
        if !self.name.starts_with(PREFIX) {
            return Err(format!(
                "environment variables in the state file must be prefixed with '{PREFIX}', found: '{}'",
                self.name
            ));
        }
        let mut value = match env {
            Env::Mock => Value::Str(self.name.clone()),
            Env::Lookup(get) => Value::Str(get(&self.name).ok_or_else(|| {
                format!(
                    "environment variable '{}' present in state file but not set",
                    self.name
                )
            })?),
        };
        for pipe in &self.pipes {
            value = match env {
                Env::Mock => mock(*pipe),
                Env::Lookup(_) => apply(*pipe, &value, &self.name)?,
            };
        }
        Ok(value)
    }
}

fn mock(pipe: Pipe) -> Value {
    match pipe {
        Pipe::Bool => Value::Bool(false),
        Pipe::Int => Value::Int(42),
        Pipe::Float => Value::Float(42.0),
    }
}

/// Applies a conversion. The message names the variable, never its value (it may be a secret).
fn apply(pipe: Pipe, value: &Value, name: &str) -> Result<Value, String> {
    let text = value.text();
    let text = text.trim();
    let bad = |what: &str| format!("environment variable '{name}' is not {what}");
    match pipe {
        Pipe::Bool => match text {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
            _ => Err(bad("a boolean (toBool)")),
        },
        Pipe::Int => text
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| bad("an integer (toInt)")),
        Pipe::Float => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::Float)
            .ok_or_else(|| bad("a number (toFloat)")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn with(vars: &[(&str, &str)], syntax: Syntax, text: &str) -> Result<String, Vec<String>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = move |k: &str| map.get(k).cloned();
        expand(text, syntax, &Env::Lookup(&get))
            .map(|e| e.text)
            .map_err(|es| {
                es.into_iter()
                    .map(|e| format!("{}:{}: {}", e.line, e.col, e.message))
                    .collect()
            })
    }

    fn yaml(vars: &[(&str, &str)], text: &str) -> String {
        with(vars, Syntax::Yaml, text).expect("expands")
    }

    fn parse_yaml(text: &str) -> serde_json::Value {
        crate::config::load::parse_value(text, Syntax::Yaml)
            .unwrap_or_else(|e| panic!("{text:?} is not YAML: {e:?}"))
    }

    /// Expands then parses, returning the value at `k`.
    fn yaml_value(value: &str, line: &str) -> serde_json::Value {
        let text = yaml(&[("DECK_V", value)], line);
        parse_yaml(&text)["k"].clone()
    }

    const AWKWARD: [&str; 9] = [
        "a: b",
        "x #not a comment",
        "say \"hi\"",
        "it's",
        "line1\nline2",
        "back\\slash",
        "- dash",
        "{not: flow}",
        " padded ",
    ];

    #[test]
    fn plain_position_values_come_through_intact() {
        for v in AWKWARD {
            let got = yaml_value(v, "k: ${{ env \"DECK_V\" }}\n");
            assert_eq!(got, serde_json::Value::String(v.into()), "value {v:?}");
        }
    }

    #[test]
    fn double_quoted_values_come_through_intact() {
        for v in AWKWARD {
            let got = yaml_value(v, "k: \"pre ${{ env \"DECK_V\" }}/post\" # c\n");
            assert_eq!(
                got,
                serde_json::Value::String(format!("pre {v}/post")),
                "{v:?}"
            );
        }
    }

    #[test]
    fn single_quoted_values_come_through_intact() {
        for v in AWKWARD {
            let got = yaml_value(v, "k: 'it''s ${{ env \"DECK_V\" }} \\ \"q\"'\n");
            assert_eq!(
                got,
                serde_json::Value::String(format!("it's {v} \\ \"q\"")),
                "{v:?}"
            );
        }
    }

    #[test]
    fn values_inside_flow_sequences_stay_one_item() {
        for v in AWKWARD {
            let text = yaml(&[("DECK_V", v)], "k: [${{ env \"DECK_V\" }}, b]\n");
            let doc = parse_yaml(&text);
            assert_eq!(doc["k"][0], serde_json::Value::String(v.into()), "{v:?}");
            assert_eq!(doc["k"][1], "b");
        }
    }

    #[test]
    fn block_scalars_keep_multiline_values_indented() {
        let text = yaml(
            &[("DECK_V", "one\ntwo: x\n#three")],
            "k: |\n  ${{ env \"DECK_V\" }}\nn: 1\n",
        );
        let doc = parse_yaml(&text);
        assert_eq!(doc["k"], "one\ntwo: x\n#three\n");
        assert_eq!(doc["n"], 1);
    }

    #[test]
    fn plain_templates_embedded_in_text_form_one_scalar() {
        let got = yaml(
            &[("DECK_HOST", "example.com")],
            "url: http://${{ env \"DECK_HOST\" }}:8000/v1 # note\n",
        );
        assert_eq!(got, "url: http://example.com:8000/v1 # note\n");
        let got = yaml(
            &[("DECK_HOST", "a: b")],
            "url: http://${{ env \"DECK_HOST\" }}/v1\n",
        );
        assert_eq!(got, "url: \"http://a: b/v1\"\n");
    }

    #[test]
    fn null_looking_and_empty_values_stay_strings() {
        for v in ["~", "null", "NULL", ""] {
            assert_eq!(
                yaml_value(v, "k: ${{ env \"DECK_V\" }}\n"),
                serde_json::json!(v),
                "{v:?}"
            );
        }
    }

    #[test]
    fn flow_collections_spanning_lines_keep_their_items() {
        let text = yaml(
            &[("DECK_V", "a, b")],
            "k: [\n  x,\n  ${{ env \"DECK_V\" }},\n  {n: ${{ env \"DECK_V\" }}}\n]\n",
        );
        let doc = parse_yaml(&text);
        assert_eq!(doc["k"], serde_json::json!(["x", "a, b", {"n": "a, b"}]));
    }

    #[test]
    fn templates_in_keys_and_list_items_expand() {
        let text = yaml(
            &[("DECK_K", "my key"), ("DECK_V", "v: 1")],
            "${{ env \"DECK_K\" }}: 1\nl:\n  - ${{ env \"DECK_V\" }}\n  - - ${{ env \"DECK_V\" }}\n",
        );
        let doc = parse_yaml(&text);
        assert_eq!(doc["my key"], 1);
        assert_eq!(doc["l"], serde_json::json!(["v: 1", ["v: 1"]]));
    }

    #[test]
    fn crlf_line_endings_are_kept() {
        let text = yaml(
            &[("DECK_V", "a #b")],
            "k: ${{ env \"DECK_V\" }}\r\nn: 2\r\n",
        );
        assert_eq!(text, "k: \"a #b\"\r\nn: 2\r\n");
        let doc = parse_yaml(&text);
        assert_eq!(doc["k"], "a #b");
    }

    #[test]
    fn a_comment_after_a_quoted_value_is_not_evaluated() {
        let src = "k: \"x\" # ${{ env \"NOPE\" }}\n";
        assert_eq!(yaml(&[], src), src);
    }

    #[test]
    fn untyped_numbers_stay_numbers_as_in_deck() {
        assert_eq!(
            yaml(&[("DECK_PORT", "8080")], "port: ${{ env \"DECK_PORT\" }}"),
            "port: 8080"
        );
    }

    #[test]
    fn typed_pipes_emit_typed_scalars() {
        let vars = [("DECK_N", "42"), ("DECK_B", "TRUE"), ("DECK_F", "1.5")];
        let text = yaml(
            &vars,
            "a: ${{ env \"DECK_N\" | toInt }}\nb: ${{env \"DECK_B\"|toBool}}\nc: ${{ env \"DECK_F\" | toFloat }}\n",
        );
        assert_eq!(text, "a: 42\nb: true\nc: 1.5\n");
    }

    #[test]
    fn bad_conversions_name_the_variable_but_not_the_value() {
        let err = with(
            &[("DECK_N", "s3cret")],
            Syntax::Yaml,
            "a: ${{ env \"DECK_N\" | toInt }}",
        )
        .unwrap_err();
        assert_eq!(
            err,
            ["1:4: environment variable 'DECK_N' is not an integer (toInt)"]
        );
        assert!(!err[0].contains("s3cret"));
    }

    #[test]
    fn unset_variables_are_errors_with_their_line() {
        let err = with(&[], Syntax::Yaml, "a: 1\nb: ${{ env \"DECK_X\" }}\n").unwrap_err();
        assert_eq!(
            err,
            ["2:4: environment variable 'DECK_X' present in state file but not set"]
        );
    }

    #[test]
    fn set_but_empty_is_accepted() {
        assert_eq!(
            yaml(&[("DECK_E", "")], "a: \"${{ env \"DECK_E\" }}\""),
            "a: \"\""
        );
    }

    #[test]
    fn names_without_the_prefix_are_refused_even_in_mock_mode() {
        let msg =
            "environment variables in the state file must be prefixed with 'DECK_', found: 'HOME'";
        let err = with(&[], Syntax::Yaml, "a: ${{ env \"HOME\" }}").unwrap_err();
        assert_eq!(err, [format!("1:4: {msg}")]);
        let err = expand("a: ${{ env \"HOME\" }}", Syntax::Yaml, &Env::Mock).unwrap_err();
        assert_eq!(err[0].message, msg);
    }

    #[test]
    fn every_problem_is_reported() {
        let err = with(
            &[],
            Syntax::Yaml,
            "a: ${{ env \"DECK_A\" }}\nb: ${{ env \"B\" }}\n",
        )
        .unwrap_err();
        assert_eq!(err.len(), 2);
    }

    #[test]
    fn templates_in_comments_are_not_evaluated() {
        let text =
            "# ${{ env \"NOPE\" }}\n  # ${{ env \"DECK_UNSET\" }}\na: 1 # ${{ env \"X\" }}\n";
        assert_eq!(yaml(&[], text), text);
    }

    #[test]
    fn a_hash_inside_quotes_is_not_a_comment() {
        let text = yaml(&[("DECK_V", "v")], "a: \"x #${{ env \"DECK_V\" }}\"\n");
        assert_eq!(text, "a: \"x #v\"\n");
    }

    #[test]
    fn mock_mode_uses_decks_placeholders() {
        let text = "a: ${{ env \"DECK_A\" }}\nb: ${{ env \"DECK_B\" | toBool }}\nc: ${{ env \"DECK_C\" | toInt }}\nd: ${{ env \"DECK_D\" | toFloat }}\n";
        let got = expand(text, Syntax::Yaml, &Env::Mock).unwrap().text;
        assert_eq!(got, "a: DECK_A\nb: false\nc: 42\nd: 42\n");
    }

    #[test]
    fn unknown_functions_and_syntax_are_errors() {
        let err = with(&[], Syntax::Yaml, "a: ${{ upper \"DECK_A\" }}").unwrap_err();
        assert!(err[0].contains("function \"upper\" not defined"), "{err:?}");
        let err = with(&[], Syntax::Yaml, "a: ${{ env DECK_A }}").unwrap_err();
        assert!(err[0].contains("unsupported template"), "{err:?}");
        let err = with(&[], Syntax::Yaml, "a: ${{ env \"DECK_A\"\n").unwrap_err();
        assert!(err[0].contains("not closed"), "{err:?}");
    }

    #[test]
    fn json_strings_get_json_escapes_and_bare_values_stay_json() {
        let vars = [
            ("DECK_V", "a\"b\\c\nd"),
            ("DECK_P", "8080"),
            ("DECK_S", "x, \"y\": 1"),
        ];
        let text = with(
            &vars,
            Syntax::Json,
            r#"{"s": "<${{ env "DECK_V" }}>", "p": ${{ env "DECK_P" }}, "q": ${{ env "DECK_S" }}}"#,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["s"], "<a\"b\\c\nd>");
        assert_eq!(v["p"], 8080);
        assert_eq!(v["q"], "x, \"y\": 1");
        assert_eq!(v.as_object().unwrap().len(), 3);
    }

    #[test]
    fn positions_map_back_through_substitutions() {
        let src = "a: ${{ env \"DECK_V\" }}\nbb: 1\n";
        let get = |_: &str| Some("a much longer value".to_owned());
        let e = expand(src, Syntax::Yaml, &Env::Lookup(&get)).unwrap();
        let exp_bb = e.text.find("bb").unwrap();
        assert_eq!(e.original_offset(exp_bb), src.find("bb").unwrap());
        assert_eq!(e.original_offset(5), 3);
        assert_eq!(line_col(src, src.find("bb").unwrap()), (2, 1));
    }

    /// The same text with `${{ … }}` written as `$<< … >>`.
    fn angle(text: &str) -> String {
        text.replace("${{", "$<<").replace("}}", ">>")
    }

    #[test]
    fn angle_delimiters_expand_exactly_like_decks() {
        let lines = [
            "k: ${{ env \"DECK_V\" }}\n",
            "k: \"pre ${{ env \"DECK_V\" }}/post\" # c\n",
            "k: 'it''s ${{ env \"DECK_V\" }}'\n",
            "k: [${{ env \"DECK_V\" }}, b]\n",
            "k: |\n  ${{ env \"DECK_V\" }}\nn: 1\n",
            "url: http://${{ env \"DECK_V\" }}:8000/v1 # note\n",
            "port: ${{ env \"DECK_N\" | toInt }}\n",
        ];
        for line in lines {
            for v in AWKWARD {
                let vars = [("DECK_V", v), ("DECK_N", "8")];
                assert_eq!(
                    yaml(&vars, &angle(line)),
                    yaml(&vars, line),
                    "{line:?} with {v:?}"
                );
            }
        }
        let json = "{\"a\": \"x ${{ env \"DECK_V\" }}\", \"n\": ${{ env \"DECK_N\" }}}";
        let vars = [("DECK_V", "q\"uote"), ("DECK_N", "8")];
        assert_eq!(
            with(&vars, Syntax::Json, &angle(json)),
            with(&vars, Syntax::Json, json)
        );
    }

    #[test]
    fn angle_delimiters_mix_with_decks_and_pass_other_template_engines_untouched() {
        let text = "a: ${{ env \"DECK_A\" }}-$<< env \"DECK_B\" >>\nb: \"{{ .Values.x }}\"\n";
        assert_eq!(
            yaml(&[("DECK_A", "1"), ("DECK_B", "2")], text),
            "a: 1-2\nb: \"{{ .Values.x }}\"\n"
        );
    }

    #[test]
    fn angle_delimiter_errors_name_the_angle_form() {
        let unclosed = with(&[], Syntax::Yaml, "k: $<< env \"DECK_V\" }}\n").unwrap_err();
        assert_eq!(
            unclosed,
            ["1:4: template is not closed with '>>' on the same line"]
        );
        let bad = with(&[], Syntax::Yaml, "k: $<< env >>\n").unwrap_err();
        assert!(bad[0].contains("'$<< env >>'"), "{bad:?}");
        let comment = "# $<< env \"DECK_UNSET\" >>\nk: 1\n";
        assert_eq!(yaml(&[], comment), comment);
        let unset = with(&[], Syntax::Yaml, "k: $<< env \"DECK_GONE\" >>\n").unwrap_err();
        assert!(unset[0].contains("DECK_GONE"), "{unset:?}");
    }
}
