//! The compose file's YAML as Compose (go-yaml) reads it, built from yaml-rust2's parser events.
//! yaml-rust2's `YamlLoader` resolves aliases, but it keeps `<<` as an ordinary key, drops the quoting
//! that decides whether `NULL` or `017` is a string, and ignores tags: Compose's meaning depends on all
//! three (merge keys, null = passed through, `!reset` removes a value).

use std::collections::{HashMap, HashSet};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A YAML node with anchors, aliases and merge keys resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    /// A string: Compose interpolates it.
    Str(String),
    /// A boolean or a number, as Compose prints it (never interpolated).
    Scalar(String),
    Seq(Vec<Node>),
    /// Keys as text (Compose compares keys by their text), in file order, merge keys resolved.
    Map(Vec<(String, Node)>),
    /// A plain `<<`: a merge key where it is a key.
    Merge,
    /// Tagged `!reset`: Compose drops it (with its key).
    Reset,
}

/// A file that expands (through aliases) to more nodes than this is refused: a few bytes of nested
/// aliases must not cost the reader gigabytes. Compose caps its own traversal at the same count.
const MAX_NODES: usize = 100_000;
/// Nor may aliases nest deeper than this (yaml-rust2 stops plain nesting at 256 levels): the tree is
/// walked and dropped recursively.
const MAX_DEPTH: usize = 512;

enum Frame {
    Seq { items: Vec<Node>, anchor: usize, reset: bool },
    Map { entries: Vec<(String, bool, Node)>, key: Option<(String, bool)>, anchor: usize, reset: bool },
}

#[derive(Default)]
struct Loader {
    stack: Vec<Frame>,
    /// Completed anchored nodes, with their size and depth (for the budgets).
    anchors: HashMap<usize, (Node, usize, usize)>,
    docs: Vec<Node>,
    nodes: usize,
    error: Option<String>,
}

/// Every document of a YAML stream (Compose merges them in order).
pub(crate) fn load(text: &str) -> Result<Vec<Node>, String> {
    let mut loader = Loader::default();
    Parser::new_from_str(text).load(&mut loader, true).map_err(|e| e.to_string())?;
    loader.error.map_or(Ok(loader.docs), Err)
}

impl MarkedEventReceiver for Loader {
    fn on_event(&mut self, ev: Event, _: Marker) {
        if self.error.is_none() {
            self.error = self.event(ev).err();
        }
    }
}

impl Loader {
    fn event(&mut self, ev: Event) -> Result<(), String> {
        match ev {
            Event::Scalar(text, style, anchor, tag) => self.complete(scalar(text, style, tag.as_ref()), anchor, 1, 1),
            Event::SequenceStart(anchor, tag) => {
                self.stack.push(Frame::Seq { items: Vec::new(), anchor, reset: is_reset(tag.as_ref()) });
                Ok(())
            }
            Event::MappingStart(anchor, tag) => {
                let reset = is_reset(tag.as_ref());
                self.stack.push(Frame::Map { entries: Vec::new(), key: None, anchor, reset });
                Ok(())
            }
            Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Seq { items, anchor, reset }) => {
                    self.complete(if reset { Node::Reset } else { Node::Seq(items) }, anchor, 1, 1)
                }
                _ => Err("unbalanced sequence".into()),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Map { entries, key: None, anchor, reset }) => {
                    let node = if reset { Node::Reset } else { merge(entries)? };
                    self.complete(node, anchor, 1, 1)
                }
                _ => Err("unbalanced mapping".into()),
            },
            Event::Alias(id) => {
                // The parser knows the anchor's name from its start; a node that is not complete yet
                // is an alias to an enclosing node (a cycle).
                let (node, size, depth) =
                    self.anchors.get(&id).cloned().ok_or("an alias refers to a node that contains it")?;
                self.complete(node, 0, size, depth)
            }
            _ => Ok(()),
        }
    }

    /// A finished node: remember its anchor, then add it to its parent (or as a document).
    fn complete(&mut self, node: Node, anchor: usize, size: usize, depth: usize) -> Result<(), String> {
        self.nodes += size;
        if self.nodes > MAX_NODES {
            return Err(format!("more than {MAX_NODES} nodes once aliases are expanded"));
        }
        if self.stack.len() + depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels through aliases"));
        }
        if anchor > 0 {
            let (size, depth) = measure(&node);
            self.anchors.insert(anchor, (node.clone(), size, depth));
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq { items, .. }) => match node {
                Node::Reset => {}
                Node::Merge => items.push(Node::Str("<<".into())),
                node => items.push(node),
            },
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    *key = Some(match node {
                        Node::Merge => ("<<".into(), true),
                        Node::Str(k) | Node::Scalar(k) => (k, false),
                        _ => return Err("a mapping key is not a string".into()),
                    })
                }
                Some(_) if node == Node::Reset => {}
                Some((k, merge)) => {
                    entries.push((k, merge, if node == Node::Merge { Node::Str("<<".into()) } else { node }))
                }
            },
        }
        Ok(())
    }
}

fn is_reset(tag: Option<&Tag>) -> bool {
    tag.is_some_and(|t| t.handle == "!" && t.suffix == "reset")
}

/// A node's size (nodes, keys included) and depth.
fn measure(node: &Node) -> (usize, usize) {
    let children: Vec<(usize, usize)> = match node {
        Node::Seq(items) => items.iter().map(measure).collect(),
        Node::Map(entries) => entries.iter().map(|(_, v)| measure(v)).map(|(s, d)| (s + 1, d)).collect(),
        _ => Vec::new(),
    };
    children.iter().fold((1, 1), |(size, depth), (s, d)| (size + s, depth.max(d + 1)))
}

/// A mapping's entries with its merge keys applied as go-yaml applies them: explicit keys beat merged
/// ones, and in `<<: [*a, *b]` the earlier source beats the later. A key written twice is an error.
fn merge(entries: Vec<(String, bool, Node)>) -> Result<Node, String> {
    let mut seen = HashSet::new();
    if let Some((key, ..)) = entries.iter().find(|(key, ..)| !seen.insert(key.as_str())) {
        return Err(format!("mapping key {key:?} is defined twice"));
    }
    let explicit: HashSet<String> = entries.iter().filter(|e| !e.1).map(|e| e.0.clone()).collect();
    let mut out: Vec<(String, Node)> = Vec::new();
    for (key, is_merge, value) in entries {
        if !is_merge {
            out.push((key, value));
            continue;
        }
        let sources = match value {
            map @ Node::Map(_) => vec![map],
            Node::Seq(items) => items,
            _ => return Err("a merge key `<<` takes a mapping or a list of mappings".into()),
        };
        for source in sources {
            let Node::Map(map) = source else {
                return Err("a merge key's list holds something other than mappings".into());
            };
            for (k, v) in map {
                if !explicit.contains(&k) && !out.iter().any(|(o, _)| *o == k) {
                    out.push((k, v));
                }
            }
        }
    }
    Ok(Node::Map(out))
}

/// A scalar as go-yaml types it when decoding into an untyped value: quoted = string; plain = null,
/// boolean, integer or float by YAML 1.2's core rules (plus Go's `017` octal and `_` separators), else
/// string. `!reset` drops it, `!!str` forces a string, other tags leave the text a string.
fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Node {
    match tag.map(|t| (t.handle.as_str(), t.suffix.as_str())) {
        Some(("!", "reset")) => return Node::Reset,
        Some(("tag:yaml.org,2002:", "str")) => return Node::Str(text),
        Some(("tag:yaml.org,2002:", "null")) => return Node::Null,
        Some(("tag:yaml.org,2002:", "merge")) => return Node::Merge,
        Some(("tag:yaml.org,2002:", _) | ("!", "override")) | None => {}
        Some(_) => return Node::Str(text),
    }
    if style != TScalarStyle::Plain {
        return Node::Str(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Node::Null,
        "true" | "True" | "TRUE" => return Node::Scalar("true".into()),
        "false" | "False" | "FALSE" => return Node::Scalar("false".into()),
        "<<" => return Node::Merge,
        _ => {}
    }
    let digits = text.replace('_', "");
    match (go_int(&digits), digits.parse::<f64>()) {
        (Some(n), _) => Node::Scalar(n.to_string()),
        (None, Ok(f)) if is_float(&digits) => Node::Scalar(f.to_string()),
        _ => Node::Str(text),
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)` (then `ParseUint`): optional sign, `0x`/`0o`/`0b` or a leading
/// `0` for octal.
fn go_int(s: &str) -> Option<i128> {
    let (sign, body) = s.split_at(usize::from(s.starts_with(['-', '+'])));
    let lower = body.to_ascii_lowercase();
    let prefixed = [("0x", 16), ("0o", 8), ("0b", 2)].into_iter().find_map(|(p, r)| Some((r, lower.strip_prefix(p)?)));
    let (radix, digits) = match prefixed {
        Some(found) => found,
        None if lower.len() > 1 && lower.starts_with('0') => (8, &lower[1..]),
        None => (10, lower.as_str()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    // The digits checked, `from_str_radix` reads the sign.
    let n = i128::from_str_radix(&format!("{sign}{digits}"), radix).ok()?;
    (i128::from(i64::MIN)..=i128::from(u64::MAX)).contains(&n).then_some(n)
}

/// go-yaml's float syntax: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn is_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = s.split_once(['e', 'E']).map_or((s, None), |(m, e)| (m, Some(e)));
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && (!int.is_empty() || !frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let mut docs = load(text).unwrap();
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    fn get<'a>(node: &'a Node, key: &str) -> &'a Node {
        match node {
            Node::Map(entries) => &entries.iter().find(|(k, _)| k == key).unwrap().1,
            other => panic!("not a mapping: {other:?}"),
        }
    }

    #[test]
    fn aliases_are_resolved_and_merge_keys_applied_at_every_level() {
        // yaml-rust2's own loader resolves the alias but keeps `<<` as a key: the reason for this module.
        let plain = yaml_rust2::YamlLoader::load_from_str("a: &x {k: 1}\nb: *x\nc: {<<: *x}\n").unwrap();
        assert_eq!(plain[0]["b"]["k"].as_i64(), Some(1));
        assert!(!plain[0]["c"]["<<"].is_badvalue(), "YamlLoader keeps the merge key as a key");

        let doc = one(
            "a: &a {k: a, only_a: 1}\nb: &b {k: b, only_b: 2}\nc:\n  k: c\n  <<: [*a, *b]\n  env:\n    <<: *b\n    \
             x: 1\nd: *a\n",
        );
        let c = get(&doc, "c");
        assert_eq!(get(c, "k"), &Node::Str("c".into()), "explicit beats merged");
        assert_eq!(get(c, "only_a"), &Node::Scalar("1".into()));
        assert_eq!(get(c, "only_b"), &Node::Scalar("2".into()));
        assert_eq!(get(get(c, "env"), "k"), &Node::Str("b".into()), "nested mappings merge too");
        assert_eq!(get(&doc, "d"), get(&doc, "a"));
        let earlier = one("a: &a {k: a}\nb: &b {k: b}\nc: {<<: [*a, *b]}\n");
        assert_eq!(get(get(&earlier, "c"), "k"), &Node::Str("a".into()), "earlier source beats later");
        // A quoted "<<" is an ordinary key for go-yaml.
        let quoted = one("a: &a {k: 1}\nc: {'<<': *a}\n");
        assert_eq!(get(get(&quoted, "c"), "<<"), get(&quoted, "a"));
    }

    #[test]
    fn scalars_are_typed_as_go_yaml_types_them() {
        let doc = one("a: NULL\nb: 'NULL'\nc: 017\nd: 0x1F\ne: 1_000\nf: True\ng: 1.50\nh: !!str 12\ni:\n\
             j: 0x1111111111111111111111111111111111111111\nk: yes\nl: -0x1F\nm: !custom 5\nn: !!int 5\no: -.5e1\n");
        assert_eq!(get(&doc, "a"), &Node::Null);
        assert_eq!(get(&doc, "b"), &Node::Str("NULL".into()));
        assert_eq!(get(&doc, "c"), &Node::Scalar("15".into()));
        assert_eq!(get(&doc, "d"), &Node::Scalar("31".into()));
        assert_eq!(get(&doc, "e"), &Node::Scalar("1000".into()));
        assert_eq!(get(&doc, "f"), &Node::Scalar("true".into()));
        assert_eq!(get(&doc, "g"), &Node::Scalar("1.5".into()));
        assert_eq!(get(&doc, "h"), &Node::Str("12".into()));
        assert_eq!(get(&doc, "i"), &Node::Null);
        assert_eq!(get(&doc, "j"), &Node::Str("0x1111111111111111111111111111111111111111".into()));
        assert_eq!(get(&doc, "k"), &Node::Str("yes".into()));
        assert_eq!(get(&doc, "l"), &Node::Scalar("-31".into()));
        assert_eq!(get(&doc, "m"), &Node::Str("5".into()), "another tag leaves the text a string");
        assert_eq!(get(&doc, "n"), &Node::Scalar("5".into()));
        assert_eq!(get(&doc, "o"), &Node::Scalar("-5".into()));
    }

    #[test]
    fn reset_drops_duplicates_fail_and_alias_bombs_are_refused() {
        let doc = one("a: !reset x\nb: 1\nc: [1, !reset 2, 3]\n");
        assert_eq!(
            doc,
            Node::Map(vec![
                ("b".into(), Node::Scalar("1".into())),
                ("c".into(), Node::Seq(vec![Node::Scalar("1".into()), Node::Scalar("3".into())]))
            ])
        );
        assert!(load("a: 1\na: 2\n").is_err());
        assert!(load("a: &a {k: 1}\nb: {<<: *a, <<: *a}\n").is_err());
        assert!(load("a: &a {k: 1}\nb: {<<: [*a, 1]}\n").unwrap_err().contains("list holds"));
        assert!(load("b: {<<: 1}\n").unwrap_err().contains("takes a mapping"));
        assert!(load("a: [1").is_err());
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", ")));
        }
        assert!(load(&bomb).unwrap_err().contains("nodes"));
        let mut deep = String::from("a0: &a0 [x]\n");
        for i in 1..8 {
            deep.push_str(&format!("a{i}: &a{i} {}*a{}{}\n", "[".repeat(100), i - 1, "]".repeat(100)));
        }
        assert!(load(&deep).unwrap_err().contains("levels"));
        assert!(load(&format!("a: {}{}", "[".repeat(60_000), "]".repeat(60_000))).is_err());
        assert_eq!(load("a: 1\n---\nb: 2\n").unwrap().len(), 2);
    }
}
