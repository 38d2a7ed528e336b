//! Owns the JSONPath subset decK's file tools take as `--selector`: `$`, `.key`, `['key']`,
//! `.*`, `[*]`, `[N]` (negative from the end), `..key` / `..*` (recursive descent) and filters
//! `[?(@.a.b)]`, `[?(@.k == 'v')]`, `[?(@.k != 3)]`. A selector resolves to concrete locations,
//! so callers can change what it selects.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("selector '{selector}' is not a valid JSONpath expression; {reason}")]
pub struct PathError {
    pub selector: String,
    pub reason: String,
}

/// One step of a concrete location inside a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A concrete location: the steps from the root.
pub type Location = Vec<Step>;

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// A child by name.
    Child(String),
    /// An array element; negative counts from the end.
    Index(i64),
    /// Every child (object values or array items).
    Wildcard,
    /// Every descendant (including the node itself) then the inner segment.
    Descend(Box<Segment>),
    /// Array items (or object values) for which the filter holds.
    Filter(Filter),
    /// Several names or indices: `['a','b']`, `[0,2]`.
    Union(Vec<Segment>),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    field: Vec<String>,
    test: Option<(bool, Value)>,
}

/// A compiled selector.
#[derive(Debug, Clone)]
pub struct Selector {
    segments: Vec<Segment>,
}

impl Selector {
    pub fn parse(source: &str) -> Result<Self, PathError> {
        let err = |reason: &str| PathError {
            selector: source.to_owned(),
            reason: reason.to_owned(),
        };
        Parser {
            chars: source.trim().chars().collect(),
            i: 0,
        }
        .selector()
        .map(|segments| Selector { segments })
        .map_err(|r| err(&r))
    }

    /// Every location the selector matches in `doc`, in document order, without duplicates.
    pub fn locate(&self, doc: &Value) -> Vec<Location> {
        let mut current: Vec<(Location, &Value)> = vec![(Vec::new(), doc)];
        for seg in &self.segments {
            let mut next = Vec::new();
            for (loc, value) in current {
                apply(seg, loc, value, &mut next);
            }
            current = next;
        }
        let mut out: Vec<Location> = Vec::new();
        for (loc, _) in current {
            if !out.contains(&loc) {
                out.push(loc);
            }
        }
        out
    }
}

/// The value at a location.
pub fn get<'a>(doc: &'a Value, loc: &[Step]) -> Option<&'a Value> {
    let mut v = doc;
    for step in loc {
        v = match (step, v) {
            (Step::Key(k), Value::Object(m)) => m.get(k)?,
            (Step::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// The value at a location, mutably.
pub fn get_mut<'a>(doc: &'a mut Value, loc: &[Step]) -> Option<&'a mut Value> {
    let mut v = doc;
    for step in loc {
        v = match (step, v) {
            (Step::Key(k), Value::Object(m)) => m.get_mut(k)?,
            (Step::Index(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

fn children(value: &Value) -> Vec<(Step, &Value)> {
    match value {
        Value::Object(m) => m.iter().map(|(k, v)| (Step::Key(k.clone()), v)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (Step::Index(i), v))
            .collect(),
        _ => Vec::new(),
    }
}

fn push<'a>(out: &mut Vec<(Location, &'a Value)>, loc: &Location, step: Step, v: &'a Value) {
    let mut l = loc.clone();
    l.push(step);
    out.push((l, v));
}

fn apply<'a>(seg: &Segment, loc: Location, value: &'a Value, out: &mut Vec<(Location, &'a Value)>) {
    match seg {
        Segment::Child(name) => {
            if let Some(v) = value.as_object().and_then(|m| m.get(name)) {
                push(out, &loc, Step::Key(name.clone()), v);
            }
        }
        Segment::Index(i) => {
            if let Some(a) = value.as_array() {
                let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                if idx >= 0
                    && let Some(v) = a.get(idx as usize)
                {
                    push(out, &loc, Step::Index(idx as usize), v);
                }
            }
        }
        Segment::Wildcard => {
            for (step, v) in children(value) {
                push(out, &loc, step, v);
            }
        }
        Segment::Union(parts) => {
            for p in parts {
                apply(p, loc.clone(), value, out);
            }
        }
        Segment::Filter(f) => {
            for (step, v) in children(value) {
                if f.holds(v) {
                    push(out, &loc, step, v);
                }
            }
        }
        Segment::Descend(inner) => {
            let mut stack = vec![(loc, value)];
            while let Some((l, v)) = stack.pop() {
                apply(inner, l.clone(), v, out);
                let mut kids: Vec<(Location, &Value)> = Vec::new();
                for (step, child) in children(v) {
                    push(&mut kids, &l, step, child);
                }
                kids.reverse();
                stack.extend(kids);
            }
        }
    }
}

impl Filter {
    fn holds(&self, v: &Value) -> bool {
        let mut field = Some(v);
        for k in &self.field {
            field = field.and_then(|f| f.as_object()).and_then(|m| m.get(k));
        }
        match (&self.test, field) {
            (None, f) => f.is_some(),
            (Some((equal, want)), Some(got)) => (got == want) == *equal,
            (Some((equal, _)), None) => !*equal,
        }
    }
}

struct Parser {
    chars: Vec<char>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn eat(&mut self, s: &str) -> bool {
        let want: Vec<char> = s.chars().collect();
        if self.chars[self.i..].starts_with(&want) {
            self.i += want.len();
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(' ') {
            self.i += 1;
        }
    }

    fn selector(&mut self) -> Result<Vec<Segment>, String> {
        let mut segs = Vec::new();
        if !self.eat("$") {
            // decK accepts `services[*]` as well as `$.services[*]`.
            if self.peek().is_some_and(is_name_char) {
                segs.push(Segment::Child(self.name()?));
            } else if self.peek().is_some() && self.peek() != Some('.') && self.peek() != Some('[')
            {
                return Err("expected '$' or a field name at the start".into());
            }
        }
        while self.i < self.chars.len() {
            if self.eat("..") {
                let inner = if self.eat("*") {
                    Segment::Wildcard
                } else if self.peek() == Some('[') {
                    self.bracket()?
                } else {
                    Segment::Child(self.name()?)
                };
                segs.push(Segment::Descend(Box::new(inner)));
            } else if self.eat(".") {
                if self.eat("*") {
                    segs.push(Segment::Wildcard);
                } else {
                    segs.push(Segment::Child(self.name()?));
                }
            } else if self.peek() == Some('[') {
                segs.push(self.bracket()?);
            } else {
                return Err(format!(
                    "unexpected '{}' at position {}",
                    self.chars[self.i],
                    self.i + 1
                ));
            }
        }
        Ok(segs)
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.i;
        while self.peek().is_some_and(is_name_char) {
            self.i += 1;
        }
        if start == self.i {
            return Err(format!("expected a field name at position {}", self.i + 1));
        }
        Ok(self.chars[start..self.i].iter().collect())
    }

    fn quoted(&mut self) -> Result<String, String> {
        let quote = self.peek().ok_or("unexpected end")?;
        self.i += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err("unterminated string".into()),
                Some('\\') => {
                    self.i += 1;
                    s.push(self.peek().ok_or("unterminated string")?);
                }
                Some(c) if c == quote => {
                    self.i += 1;
                    return Ok(s);
                }
                Some(c) => s.push(c),
            }
            self.i += 1;
        }
    }

    fn bracket(&mut self) -> Result<Segment, String> {
        self.i += 1; // '['
        self.skip_spaces();
        let seg = if self.eat("*") {
            Segment::Wildcard
        } else if self.eat("?") {
            self.filter()?
        } else {
            let mut parts = Vec::new();
            loop {
                self.skip_spaces();
                match self.peek() {
                    Some('\'' | '"') => parts.push(Segment::Child(self.quoted()?)),
                    Some(c) if c == '-' || c.is_ascii_digit() => {
                        let start = self.i;
                        self.i += 1;
                        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                            self.i += 1;
                        }
                        let text: String = self.chars[start..self.i].iter().collect();
                        parts.push(Segment::Index(
                            text.parse().map_err(|_| format!("bad index '{text}'"))?,
                        ));
                    }
                    _ => {
                        return Err(format!(
                            "unexpected content in '[' at position {}",
                            self.i + 1
                        ));
                    }
                }
                self.skip_spaces();
                if !self.eat(",") {
                    break;
                }
            }
            if parts.len() == 1 {
                parts.remove(0)
            } else {
                Segment::Union(parts)
            }
        };
        self.skip_spaces();
        if !self.eat("]") {
            return Err(format!("expected ']' at position {}", self.i + 1));
        }
        Ok(seg)
    }

    fn filter(&mut self) -> Result<Segment, String> {
        self.skip_spaces();
        if !self.eat("(") {
            return Err("expected '(' after '?'".into());
        }
        self.skip_spaces();
        if !self.eat("@") {
            return Err("a filter must start with '@'".into());
        }
        let mut field = Vec::new();
        while self.eat(".") {
            field.push(self.name()?);
        }
        self.skip_spaces();
        let test = if self.eat("==") {
            Some((true, self.literal()?))
        } else if self.eat("!=") {
            Some((false, self.literal()?))
        } else {
            None
        };
        self.skip_spaces();
        if !self.eat(")") {
            return Err("expected ')' to close the filter (supported: @.field, ==, !=)".into());
        }
        Ok(Segment::Filter(Filter { field, test }))
    }

    fn literal(&mut self) -> Result<Value, String> {
        self.skip_spaces();
        if matches!(self.peek(), Some('\'' | '"')) {
            return Ok(Value::String(self.quoted()?));
        }
        let start = self.i;
        while self.peek().is_some_and(|c| c != ')' && c != ' ') {
            self.i += 1;
        }
        let text: String = self.chars[start..self.i].iter().collect();
        serde_json::from_str(&text).map_err(|_| format!("bad literal '{text}' in filter"))
    }
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc() -> Value {
        json!({
            "services": [
                {"name": "a", "routes": [{"name": "ra", "plugins": [{"name": "p1"}]}], "plugins": [{"name": "p2"}]},
                {"name": "b", "port": 8080}
            ],
            "plugins": [{"name": "p3"}]
        })
    }

    fn names(sel: &str) -> Vec<String> {
        let d = doc();
        Selector::parse(sel)
            .unwrap()
            .locate(&d)
            .iter()
            .map(|l| {
                let mut d2 = d.clone();
                get_mut(&mut d2, l).unwrap()["name"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn selects_children_indices_and_wildcards() {
        assert_eq!(names("$.services[*]"), ["a", "b"]);
        assert_eq!(names("services[*]"), ["a", "b"]);
        assert_eq!(names("$.services[1]"), ["b"]);
        assert_eq!(names("$.services[-1]"), ["b"]);
        assert_eq!(names("$['services'][0]"), ["a"]);
        assert_eq!(names("$.services.*.routes[*]"), ["ra"]);
    }

    #[test]
    fn recursive_descent_finds_every_level_in_document_order() {
        // Each node's own match comes before its descendants' (pre-order).
        assert_eq!(names("$..plugins[*]"), ["p3", "p2", "p1"]);
        assert_eq!(names("$..routes[*]"), ["ra"]);
    }

    #[test]
    fn filters_test_presence_and_equality() {
        assert_eq!(names("$.services[?(@.name == 'b')]"), ["b"]);
        assert_eq!(names("$.services[?(@.name != 'b')]"), ["a"]);
        assert_eq!(names("$.services[?(@.port)]"), ["b"]);
        assert_eq!(names("$.services[?(@.port == 8080)]"), ["b"]);
    }

    #[test]
    fn bad_selectors_say_why() {
        let e = Selector::parse("$.services[").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("selector '$.services[' is not a valid JSONpath expression;"),
            "{e}"
        );
        assert!(Selector::parse("$.services[?(@.a > 1)]").is_err());
    }
}
