//! Owns the map from entity paths (`services[0].routes[1].paths[0]`) to where they are written
//! in a file, built from yaml-rust2's marked events (which also read JSON).
//!
//! A mapping entry is located at its key, a sequence item at the item, so an unknown field
//! `retriez` under `services[0]` points at the `retriez` key itself.

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Byte offsets (in the parsed text) of every path in a document.
#[derive(Debug, Default, Clone)]
pub struct Positions {
    offsets: HashMap<String, usize>,
    /// Keys written twice in one mapping (path, offset of the repeat). Parsers keep only one
    /// of them silently, so they are reported as problems.
    pub duplicates: Vec<(String, usize)>,
}

impl Positions {
    /// Builds the map from YAML or JSON text. Text that does not parse yields an empty map
    /// (syntax errors are reported by the loader, which parses first).
    pub fn of(text: &str) -> Self {
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut walker, false).is_err() {
            return Self::default();
        }
        Self {
            offsets: walker.offsets,
            duplicates: walker.duplicates,
        }
    }

    /// The offset of `path`, or of its nearest ancestor that is written in the file.
    pub fn offset(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(o) = self.offsets.get(p) {
                return Some(*o);
            }
            if p.is_empty() {
                return None;
            }
            p = parent(p);
        }
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → ``.
pub fn parent(path: &str) -> &str {
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    &path[..cut]
}

/// Appends a field name to a path.
pub fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// Appends a sequence index to a path.
pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

enum Frame {
    /// In a mapping: its path, the key awaiting its value (if any), and the keys seen.
    Map {
        path: String,
        key: Option<String>,
        seen: HashSet<String>,
    },
    /// In a sequence: its path and the next item's index.
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    offsets: HashMap<String, usize>,
    duplicates: Vec<(String, usize)>,
}

impl Walker {
    /// The path of the node that starts now, recording its offset; advances the parent.
    fn enter(&mut self, mark: Marker) -> Option<String> {
        match self.stack.last_mut() {
            None => {
                self.offsets.entry(String::new()).or_insert(mark.index());
                Some(String::new())
            }
            Some(Frame::Seq { path, next }) => {
                let p = index(path, *next);
                *next += 1;
                self.offsets.insert(p.clone(), mark.index());
                Some(p)
            }
            Some(Frame::Map { path, key, .. }) => key.take().map(|k| join(path, &k)),
        }
    }

    /// A scalar in key position becomes the pending key, located at the key.
    fn key(&mut self, value: &str, mark: Marker) -> bool {
        if let Some(Frame::Map { path, key, seen }) = self.stack.last_mut()
            && key.is_none()
        {
            // A mapping that is a sequence item is marked at its first key's `:`; its first
            // key is where it starts.
            self.offsets
                .entry(path.clone())
                .and_modify(|o| *o = (*o).min(mark.index()));
            let p = join(path, value);
            if seen.insert(value.to_owned()) {
                self.offsets.insert(p, mark.index());
            } else {
                self.duplicates.push((p, mark.index()));
            }
            *key = Some(value.to_owned());
            return true;
        }
        false
    }
}

impl Walker {
    fn scalar(&mut self, value: &str, mark: Marker) {
        if !self.key(value, mark) {
            self.enter(mark);
        }
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => self.scalar(&value, mark),
            Event::Alias(_) => {
                self.enter(mark);
            }
            Event::MappingStart(..) => {
                let path = self.enter(mark).unwrap_or_default();
                self.stack.push(Frame::Map {
                    path,
                    key: None,
                    seen: HashSet::new(),
                });
            }
            Event::SequenceStart(..) => {
                let path = self.enter(mark).unwrap_or_default();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::template::line_col;

    fn at(text: &str, path: &str) -> (usize, usize) {
        line_col(text, Positions::of(text).offset(path).expect("located"))
    }

    #[test]
    fn mapping_entries_are_located_at_their_key() {
        let text =
            "_format_version: \"3.0\"\nservices:\n  - name: a\n    url: http://x\n    retriez: 3\n";
        assert_eq!(at(text, "services[0].retriez"), (5, 5));
        assert_eq!(at(text, "services[0]"), (3, 5));
        assert_eq!(at(text, "services"), (2, 1));
    }

    #[test]
    fn missing_paths_fall_back_to_the_nearest_ancestor() {
        let text = "services:\n- name: a\n  routes:\n  - paths: [/a, /b]\n";
        assert_eq!(at(text, "services[0].routes[0].paths[1]"), (4, 17));
        assert_eq!(at(text, "services[0].routes[0].nope.deeper"), (4, 5));
    }

    #[test]
    fn keys_written_twice_are_found_at_the_repeat() {
        let text = "a:\n  b: 1\n  b: 2\n";
        let p = Positions::of(text);
        assert_eq!(p.duplicates.len(), 1);
        assert_eq!(p.duplicates[0].0, "a.b");
        assert_eq!(line_col(text, p.duplicates[0].1), (3, 3));
        assert_eq!(at(text, "a.b"), (2, 3));
    }

    #[test]
    fn json_is_located_too() {
        let text = "{\n  \"services\": [\n    {\"name\": \"a\", \"retriez\": 1}\n  ]\n}\n";
        assert_eq!(at(text, "services[0].retriez"), (3, 19));
    }

    #[test]
    fn nested_values_after_a_mapping_value_keep_their_paths() {
        let text = "a:\n  b: {c: 1}\n  d: [x]\ne: 2\n";
        assert_eq!(at(text, "a.d[0]"), (3, 7));
        assert_eq!(at(text, "e"), (4, 1));
    }
}
