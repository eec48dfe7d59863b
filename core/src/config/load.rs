//! From TOML text to a checked [`HermesConfig`], reporting every problem at once.
//!
//! serde stops at the first error, so decoding runs in a loop: each type error or unknown key is
//! recorded with its path, that one key is removed (its default takes its place) and decoding
//! runs again. Then the value checks run on the decoded config. Finally every problem is matched
//! to its line in the original text.

use std::ops::Range;

use toml_edit::{Document, DocumentMut, Item, Table, TableLike, Value};

use super::problems::{Problem, Problems};
use super::{Env, HermesConfig};

/// Decoding retries at most this many times: a file with more bad keys than this is reported
/// in part (and says so).
const MAX_DECODE_PROBLEMS: usize = 100;

/// Parses and checks `hermes.toml` text. `Ok` only when there is no problem at all.
pub fn parse(text: &str, env: Env<'_>) -> Result<HermesConfig, Vec<Problem>> {
    match parse_with_problems(text, env) {
        (Some(config), problems) if problems.is_empty() => Ok(config),
        (_, problems) => Err(problems),
    }
}

/// Like [`parse`], but also returns the decoded configuration when only value checks failed,
/// so a caller can run checks of its own (files the profile names) and report everything.
pub fn parse_with_problems(text: &str, env: Env<'_>) -> (Option<HermesConfig>, Vec<Problem>) {
    parse_with_overrides(text, env, &[])
}

/// A value set from the environment over the file: `HERMES__SERVER__LISTEN=0.0.0.0:8080` sets
/// `server.listen`. The value is read as a TOML value when it is one (`20`, `true`,
/// `["en-US"]`), and as a string otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// The variable it came from, named in problems it causes.
    pub var: String,
    /// `server.listen`.
    pub path: String,
    pub value: String,
}

/// Variables named `HERMES__SECTION__KEY` become overrides of `section.key`.
pub fn env_overrides(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
    let mut out: Vec<Override> = vars
        .into_iter()
        .filter_map(|(var, value)| {
            let rest = var.strip_prefix(OVERRIDE_PREFIX)?;
            let path = rest.split("__").map(str::to_ascii_lowercase).collect::<Vec<_>>().join(".");
            (!path.is_empty()).then_some(Override { var, path, value })
        })
        .collect();
    out.sort_by(|a, b| a.var.cmp(&b.var));
    out
}

const OVERRIDE_PREFIX: &str = "HERMES__";

/// [`parse_with_problems`] with `overrides` applied over the file. Problems with an overridden
/// key name the variable instead of a line.
pub fn parse_with_overrides(
    text: &str,
    env: Env<'_>,
    overrides: &[Override],
) -> (Option<HermesConfig>, Vec<Problem>) {
    let spanned = match Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start));
            let message = e.message().trim_end().to_string();
            return (
                None,
                vec![Problem { path: "(syntax)".into(), message, line, from_env: None }],
            );
        }
    };
    // An override is read as TOML where it is a value (`20`, `true`), but a field that takes
    // text takes it as given: a Telnyx connection id is all digits. Such overrides are set
    // again as strings and the file decoded once more.
    let mut as_text: Vec<&str> = Vec::new();
    let (config, mut problems) = loop {
        let mut problems = Problems::new();
        let mut doc = spanned.clone().into_mut();
        for o in overrides {
            let literal = as_text.contains(&o.path.as_str());
            if !set(&mut doc, &o.path, &o.value, literal) {
                problems.push(
                    &o.path,
                    format!("cannot be set from {}: a parent key is not a table", o.var),
                );
            }
        }
        let config = decode(doc, &mut problems);
        let wants_text = problems.iter().find_map(|p| {
            let o = overrides.iter().find(|o| o.path == p.path)?;
            let text_expected = p.message.ends_with("expected a quoted string");
            (text_expected && !as_text.contains(&o.path.as_str())).then_some(o.path.as_str())
        });
        match wants_text {
            Some(path) => as_text.push(path),
            None => break (config, problems),
        }
    };
    let undecodable_paths: Vec<String> = problems.iter().map(|p| p.path.clone()).collect();
    if let Some(config) = &config {
        // A key that failed to decode was replaced by its default; checking that default
        // would only repeat the problem in other words.
        for problem in config.check(env).into_vec() {
            if !undecodable_paths.iter().any(|bad| is_within(&problem.path, bad)) {
                problems.push(problem.path, problem.message);
            }
        }
    }
    let mut list = problems.into_vec();
    for problem in &mut list {
        match overrides.iter().find(|o| is_within(&problem.path, &o.path)) {
            Some(o) => problem.from_env = Some(o.var.clone()),
            None => problem.line = span_of(&spanned, &problem.path).map(|s| line_of(text, s.start)),
        }
    }
    // In file order, as an editor would walk them; problems with no line (defaults) last.
    list.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    // A configuration that failed to decode has no meaning of its own; hand it out only when
    // every key decoded.
    let decoded_cleanly = !list.iter().any(|p| undecodable_paths.contains(&p.path));
    (config.filter(|_| decoded_cleanly), list)
}

/// Decodes, removing each offending key in turn. `None` if decoding never succeeded.
fn decode(mut doc: DocumentMut, problems: &mut Problems) -> Option<HermesConfig> {
    for _ in 0..MAX_DECODE_PROBLEMS {
        let deserializer = toml_edit::de::Deserializer::from(doc.clone());
        let err = match serde_path_to_error::deserialize::<_, HermesConfig>(deserializer) {
            Ok(config) => return Some(config),
            Err(err) => err,
        };
        let mut path = err.path().to_string();
        let message = err.inner().message().to_string();
        // Point at an unknown key itself, whether or not the path already ends with it.
        if let Some(key) = unknown_field(&message) {
            let ends_with_key = path == key || path.ends_with(&format!(".{key}"));
            if !ends_with_key {
                path = if path == "." || path.is_empty() {
                    key.into()
                } else {
                    format!("{path}.{key}")
                };
            }
        }
        let message = friendlier(&message);
        let removed = remove(&mut doc, &segments(&path));
        problems.push(path, message);
        if !removed {
            return None;
        }
    }
    problems.push("", format!("more than {MAX_DECODE_PROBLEMS} problems; fix these first"));
    None
}

/// Whether `path` is `ancestor` or lies inside it.
fn is_within(path: &str, ancestor: &str) -> bool {
    path.strip_prefix(ancestor).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// `unknown field `x`, expected …` → `x`.
fn unknown_field(message: &str) -> Option<&str> {
    message.strip_prefix("unknown field `")?.split('`').next()
}

/// serde's messages name Rust types; say what the file needs instead.
fn friendlier(message: &str) -> String {
    let message = message.trim_end();
    for (rust, plain) in [
        ("u8", "a whole number 0-255"),
        ("u16", "a whole number"),
        ("u32", "a whole number"),
        ("u64", "a whole number"),
        ("usize", "a whole number"),
        ("f32", "a number"),
        ("f64", "a number"),
        ("a boolean", "true or false"),
        ("a string", "a quoted string"),
        ("a sequence", "a list [ … ]"),
    ] {
        if let Some(head) = message.strip_suffix(&format!("expected {rust}")) {
            return format!("{head}expected {plain}");
        }
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((key, expected)) = rest.split_once("`, expected ") {
            return format!("unknown key {key:?}; this section takes {expected}");
        }
        if let Some((key, _)) = rest.split_once("`, there are no fields") {
            return format!("unknown key {key:?}; this section takes no keys");
        }
    }
    message.to_string()
}

#[derive(Debug, PartialEq)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `business.services[2].price` → Key, Key, Index, Key.
fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        while let Some((index, tail)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                out.push(Segment::Index(i));
            }
            rest = tail.strip_prefix('[').unwrap_or(tail);
        }
    }
    out
}

/// A place in the document while walking a path: arrays of tables hold tables, arrays hold
/// values, and only tables hold items.
enum Node<'a> {
    Item(&'a Item),
    Table(&'a Table),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    fn table_like(&self) -> Option<&'a dyn TableLike> {
        match *self {
            Node::Item(item) => item.as_table_like(),
            Node::Table(t) => Some(t),
            Node::Value(v) => v.as_inline_table().map(|t| t as &dyn TableLike),
        }
    }

    fn child(&self, seg: &Segment<'_>) -> Option<(Node<'a>, Option<Range<usize>>)> {
        match seg {
            Segment::Key(k) => {
                let (key, item) = self.table_like()?.get_key_value(k)?;
                Some((Node::Item(item), key.span().or_else(|| item.span())))
            }
            Segment::Index(i) => match *self {
                Node::Item(Item::ArrayOfTables(a)) => {
                    let t = a.get(*i)?;
                    Some((Node::Table(t), t.span()))
                }
                Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)) => {
                    let v = a.get(*i)?;
                    Some((Node::Value(v), v.span()))
                }
                _ => None,
            },
        }
    }
}

enum NodeMut<'a> {
    Item(&'a mut Item),
    Table(&'a mut Table),
    Value(&'a mut Value),
}

impl<'a> NodeMut<'a> {
    fn child(self, seg: &Segment<'_>) -> Option<NodeMut<'a>> {
        match (seg, self) {
            (Segment::Key(k), NodeMut::Item(item)) => {
                item.as_table_like_mut()?.get_mut(k).map(NodeMut::Item)
            }
            (Segment::Key(k), NodeMut::Table(t)) => t.get_mut(k).map(NodeMut::Item),
            (Segment::Key(k), NodeMut::Value(v)) => {
                v.as_inline_table_mut()?.get_mut(k).map(NodeMut::Value)
            }
            (Segment::Index(i), NodeMut::Item(Item::ArrayOfTables(a))) => {
                a.get_mut(*i).map(NodeMut::Table)
            }
            (Segment::Index(i), NodeMut::Item(Item::Value(Value::Array(a))))
            | (Segment::Index(i), NodeMut::Value(Value::Array(a))) => {
                a.get_mut(*i).map(NodeMut::Value)
            }
            _ => None,
        }
    }

    /// Removes the child at `seg`. False if there is none.
    fn remove(self, seg: &Segment<'_>) -> bool {
        match (seg, self) {
            (Segment::Key(k), NodeMut::Item(item)) => {
                item.as_table_like_mut().is_some_and(|t| t.remove(k).is_some())
            }
            (Segment::Key(k), NodeMut::Table(t)) => t.remove(k).is_some(),
            (Segment::Key(k), NodeMut::Value(v)) => {
                v.as_inline_table_mut().is_some_and(|t| t.remove(k).is_some())
            }
            (Segment::Index(i), NodeMut::Item(Item::ArrayOfTables(a))) if *i < a.len() => {
                a.remove(*i);
                true
            }
            (Segment::Index(i), NodeMut::Item(Item::Value(Value::Array(a))))
            | (Segment::Index(i), NodeMut::Value(Value::Array(a)))
                if *i < a.len() =>
            {
                a.remove(*i);
                true
            }
            _ => false,
        }
    }
}

/// Sets the key at dotted `path` to `raw` — a TOML value when it reads as one, else (or when
/// `literal`) a string — creating tables on the way. False if a parent on the way is not a
/// table.
fn set(doc: &mut DocumentMut, path: &str, raw: &str, literal: bool) -> bool {
    let value: Value =
        if literal { Value::from(raw) } else { raw.parse().unwrap_or_else(|_| Value::from(raw)) };
    let keys: Vec<&str> = path.split('.').collect();
    let Some((last, parents)) = keys.split_last() else { return false };
    let mut table: &mut dyn TableLike = doc.as_table_mut();
    for key in parents {
        let entry = table.entry(key).or_insert_with(|| Item::Table(Table::new()));
        match entry.as_table_like_mut() {
            Some(t) => table = t,
            None => return false,
        }
    }
    table.insert(last, Item::Value(value));
    true
}

/// Removes the item at `path` (so its default applies). False if there is nothing to remove.
fn remove(doc: &mut DocumentMut, path: &[Segment<'_>]) -> bool {
    let Some((last, parents)) = path.split_last() else { return false };
    let mut node = NodeMut::Item(doc.as_item_mut());
    for seg in parents {
        match node.child(seg) {
            Some(next) => node = next,
            None => return false,
        }
    }
    node.remove(last)
}

/// The 1-based line of the field at `path` in `text` (or of its nearest enclosing key), for
/// problems found outside this module (missing seed files, say).
pub fn line_of_path(text: &str, path: &str) -> Option<usize> {
    let doc = Document::parse(text).ok()?;
    span_of(&doc, path).map(|s| line_of(text, s.start))
}

/// The span of the key at `path` or, where the path leads past what the file has (a default
/// that failed a check), of the nearest enclosing key or table.
fn span_of(doc: &Document<&str>, path: &str) -> Option<Range<usize>> {
    let mut best = None;
    let mut node = Node::Item(doc.as_item());
    for seg in segments(path) {
        match node.child(&seg) {
            Some((next, span)) => {
                best = span.or(best);
                node = next;
            }
            None => break,
        }
    }
    best
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}
