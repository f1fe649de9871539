//! Field-precise locations: the line and column of `spec.http[0].route[1].destination.subset`.
//!
//! Resources only remember where their document starts ([`crate::model::Resource::source`]),
//! because the typed model has no room for positions. A finding should point at the field it is
//! about, so `analyze` re-reads each file once per run as a YAML event stream (the same parser
//! serde-saphyr uses, so positions agree), builds a small tree of positions, and walks it along a
//! field path. Documents are found by their start position, which is also how `kind: List`
//! items are found (an item's start is the resource's start). When a path does not exist in the
//! text (the field is absent, or came from an alias), the deepest part that exists is used: the
//! parent mapping's key, or at worst the resource itself.
//!
//! Paths are dotted keys with `[n]` for sequence items and `["key"]` for keys that contain dots
//! or brackets (`spec.subsets[0].labels["app.kubernetes.io/name"]`). A key resolves to the
//! position of the key itself, a sequence index to the position of the item.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_saphyr::granit_parser::{Event, Parser, Span};

use crate::model::Location;

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// Splits a field path into its steps; malformed tails are dropped (the caller then gets the
/// position of the longest well-formed prefix).
pub(crate) fn parse_path(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut chars = path.chars().peekable();
    let mut key = String::new();
    let flush = |key: &mut String, out: &mut Vec<Segment>| {
        if !key.is_empty() {
            out.push(Segment::Key(std::mem::take(key)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '.' => flush(&mut key, &mut out),
            '[' => {
                flush(&mut key, &mut out);
                if chars.peek() == Some(&'"') {
                    chars.next();
                    let mut quoted = String::new();
                    let mut closed = false;
                    while let Some(q) = chars.next() {
                        match q {
                            '\\' => {
                                if let Some(escaped) = chars.next() {
                                    quoted.push(escaped);
                                }
                            }
                            '"' => {
                                closed = chars.next() == Some(']');
                                break;
                            }
                            other => quoted.push(other),
                        }
                    }
                    if !closed {
                        return out;
                    }
                    out.push(Segment::Key(quoted));
                } else {
                    let digits: String = chars.by_ref().take_while(|d| *d != ']').collect();
                    match digits.parse() {
                        Ok(index) => out.push(Segment::Index(index)),
                        Err(_) => return out,
                    }
                }
            }
            other => key.push(other),
        }
    }
    flush(&mut key, &mut out);
    out
}

/// `.name`, or `["name"]` when `name` would not read back as one key.
pub(crate) fn key(name: &str) -> String {
    if !name.is_empty() && !name.contains(['.', '[', ']', '"', '\\']) {
        format!(".{name}")
    } else {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("[\"{escaped}\"]")
    }
}

/// A position: 1-based line and column.
type Pos = (u32, u32);

#[derive(Debug)]
enum NodeKind {
    Scalar,
    /// An alias of the node with this anchor id.
    Alias(usize),
    Sequence(Vec<usize>),
    /// Entries: key text, key position, value node.
    Mapping(Vec<(String, Pos, usize)>),
}

#[derive(Debug)]
struct Node {
    pos: Pos,
    kind: NodeKind,
}

/// The positions of one file's YAML nodes, and where each document (or List item) starts.
#[derive(Debug, Default)]
pub(crate) struct FileMap {
    nodes: Vec<Node>,
    /// Document roots and `kind: List` items, by start position.
    starts: HashMap<Pos, usize>,
    /// The first start on each line, for a resource whose column does not match.
    lines: HashMap<u32, usize>,
    anchors: HashMap<usize, usize>,
}

fn pos_of(span: &Span) -> Pos {
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    (
        clamp(span.start.line()).max(1),
        clamp(span.start.col()).saturating_add(1),
    )
}

impl FileMap {
    /// Reads `text`; a syntax error ends the walk and what came before is kept.
    pub(crate) fn parse(text: &str) -> Self {
        let mut map = FileMap::default();
        let mut roots = Vec::new();
        // Open containers, and for mappings the key waiting for its value.
        let mut stack: Vec<(usize, Option<(String, Pos)>)> = Vec::new();
        for event in Parser::new_from_str(text) {
            let Ok((event, span)) = event else { break };
            let pos = pos_of(&span);
            let (node, anchor, opens) = match event {
                Event::Scalar(value, _, anchor, _) => {
                    if let Some((parent, pending @ None)) = stack.last_mut()
                        && matches!(map.nodes[*parent].kind, NodeKind::Mapping(_))
                    {
                        // A mapping key: remember it until its value arrives.
                        *pending = Some((value.into_owned(), pos));
                        continue;
                    }
                    (
                        Node {
                            pos,
                            kind: NodeKind::Scalar,
                        },
                        anchor,
                        false,
                    )
                }
                Event::Alias(id) => (
                    Node {
                        pos,
                        kind: NodeKind::Alias(id),
                    },
                    0,
                    false,
                ),
                Event::SequenceStart(_, anchor, _) => (
                    Node {
                        pos,
                        kind: NodeKind::Sequence(Vec::new()),
                    },
                    anchor,
                    true,
                ),
                Event::MappingStart(_, anchor, _) => (
                    Node {
                        pos,
                        kind: NodeKind::Mapping(Vec::new()),
                    },
                    anchor,
                    true,
                ),
                Event::SequenceEnd | Event::MappingEnd => {
                    if let Some((done, _)) = stack.pop() {
                        map.attach(&mut stack, &mut roots, done);
                    }
                    continue;
                }
                _ => continue,
            };
            let id = map.nodes.len();
            map.nodes.push(node);
            if anchor != 0 {
                map.anchors.insert(anchor, id);
            }
            if opens {
                // A complex (non-scalar) mapping key is kept as an empty key.
                if let Some((parent, pending @ None)) = stack.last_mut()
                    && matches!(map.nodes[*parent].kind, NodeKind::Mapping(_))
                {
                    *pending = Some((String::new(), pos));
                }
                stack.push((id, None));
            } else {
                map.attach(&mut stack, &mut roots, id);
            }
        }
        for root in roots {
            map.index_start(root);
        }
        map
    }

    /// Hangs a finished node under the open container, or makes it a document root.
    fn attach(
        &mut self,
        stack: &mut [(usize, Option<(String, Pos)>)],
        roots: &mut Vec<usize>,
        child: usize,
    ) {
        let Some((parent, pending)) = stack.last_mut() else {
            roots.push(child);
            return;
        };
        match &mut self.nodes[*parent].kind {
            NodeKind::Sequence(items) => items.push(child),
            NodeKind::Mapping(entries) => match pending.take() {
                Some((key, key_pos)) => entries.push((key, key_pos, child)),
                // A non-scalar key finished: its value comes next.
                None => *pending = Some((String::new(), self.nodes[child].pos)),
            },
            NodeKind::Scalar | NodeKind::Alias(_) => {}
        }
    }

    /// Records a document (or List item) start, and the items of a `kind: List`.
    fn index_start(&mut self, id: usize) {
        let pos = self.nodes[id].pos;
        self.starts.entry(pos).or_insert(id);
        self.lines.entry(pos.0).or_insert(id);
        let items =
            match &self.nodes[id].kind {
                NodeKind::Mapping(entries) => entries
                    .iter()
                    .find(|(k, _, _)| k == "items")
                    .and_then(|(_, _, v)| match &self.nodes[*v].kind {
                        NodeKind::Sequence(items) => Some(items.clone()),
                        _ => None,
                    }),
                _ => None,
            };
        for item in items.unwrap_or_default() {
            if matches!(self.nodes[item].kind, NodeKind::Mapping(_)) {
                self.index_start(item);
            }
        }
    }

    /// Follows aliases to the node they stand for.
    fn resolve(&self, mut id: usize) -> usize {
        for _ in 0..16 {
            match self.nodes[id].kind {
                NodeKind::Alias(anchor) => match self.anchors.get(&anchor) {
                    Some(&target) => id = target,
                    None => break,
                },
                _ => break,
            }
        }
        id
    }

    /// The position of `path` under the resource starting at `start` (line, column): the
    /// deepest part of the path found, or `None` when no resource starts there.
    pub(crate) fn locate(&self, start: Pos, path: &[Segment]) -> Option<Pos> {
        let root = self
            .starts
            .get(&start)
            .or_else(|| self.lines.get(&start.0))?;
        let mut node = *root;
        let mut pos = self.nodes[node].pos;
        for segment in path {
            let current = self.resolve(node);
            let next = match (&self.nodes[current].kind, segment) {
                (NodeKind::Mapping(entries), Segment::Key(want)) => entries
                    .iter()
                    .find(|(k, _, _)| k == want)
                    .map(|(_, p, v)| (*p, *v)),
                (NodeKind::Sequence(items), Segment::Index(i)) => {
                    items.get(*i).map(|&item| (self.nodes[item].pos, item))
                }
                _ => None,
            };
            let Some((at, child)) = next else { break };
            pos = at;
            node = child;
        }
        Some(pos)
    }
}

/// Finds the line of a field inside a loaded resource (`spec.http[2]` of the VirtualService
/// that starts at some file:line), reading and parsing each file at most once. `analyze` uses
/// it to point findings at the offending field, `explain` to point at the route.
///
/// ```
/// use mesh_core::loader::Loader;
/// use mesh_core::validate::SourceMap;
///
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("vs.yaml"), "apiVersion: networking.istio.io/v1
/// kind: VirtualService
/// metadata: {name: r}
/// spec:
///   hosts: [r]
///   http:
///   - route: [{destination: {host: a}}]
///   - route: [{destination: {host: b}}]
/// ").unwrap();
/// let snapshot = Loader::new([dir.path()]).load().unwrap();
/// let vs = snapshot.virtual_services().next().unwrap();
/// let mut map = SourceMap::new();
/// assert_eq!(map.locate(&vs.source, "spec.http[1]").line, 8);
/// ```
#[derive(Debug, Default)]
pub struct SourceMap {
    files: HashMap<Arc<Path>, Option<FileMap>>,
}

impl SourceMap {
    /// An empty map; files are read on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// The location of `path` in the resource that starts at `start`; `start` itself when the
    /// file cannot be read or the resource is not found in it.
    pub fn locate(&mut self, start: &Location, path: &str) -> Location {
        if start.line == 0 {
            return start.clone();
        }
        let file = self
            .files
            .entry(Arc::clone(&start.file))
            .or_insert_with(|| {
                std::fs::read_to_string(&start.file)
                    .ok()
                    .map(|t| FileMap::parse(&t))
            });
        let segments = parse_path(path);
        match file
            .as_ref()
            .and_then(|f| f.locate((start.line, start.column), &segments))
        {
            Some((line, column)) => Location {
                file: Arc::clone(&start.file),
                line,
                column,
            },
            None => start.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::parse_str;

    fn at(map: &FileMap, start: Pos, path: &str) -> Pos {
        map.locate(start, &parse_path(path))
            .expect("resource found")
    }

    #[test]
    fn paths_parse() {
        use Segment::{Index, Key};
        assert_eq!(
            parse_path("spec.http[0].route[12].destination"),
            [
                Key("spec".into()),
                Key("http".into()),
                Index(0),
                Key("route".into()),
                Index(12),
                Key("destination".into())
            ]
        );
        assert_eq!(
            parse_path(r#"spec.labels["app.kubernetes.io/name"].x"#),
            [
                Key("spec".into()),
                Key("labels".into()),
                Key("app.kubernetes.io/name".into()),
                Key("x".into())
            ]
        );
        assert_eq!(
            parse_path(r#"a["q\"uote"]"#),
            [Key("a".into()), Key("q\"uote".into())]
        );
        assert_eq!(parse_path("a[x].b"), [Key("a".into())]);
        assert_eq!(parse_path(""), []);
        assert_eq!(format!("spec{}", key("a.b")), r#"spec["a.b"]"#);
        assert_eq!(format!("spec{}", key("x-canary")), "spec.x-canary");
        assert_eq!(
            parse_path(&format!("h{}", key(r#"a"b.c"#))),
            [Key("h".into()), Key(r#"a"b.c"#.into())]
        );
    }

    const TWO_DOCS: &str = "\
# a comment
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a}
spec:
  hosts: [reviews]
  http:
  - match:
    - uri: {prefix: /v2}
    route:
    - destination: {host: reviews, subset: v2}
    - destination:
        host: reviews
        subset: v3
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: b
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1, app.kubernetes.io/name: reviews}
";

    #[test]
    fn keys_and_items_resolve_to_their_positions() {
        let resources = parse_str(TWO_DOCS, Path::new("m.yaml"), "default").unwrap();
        let map = FileMap::parse(TWO_DOCS);
        let vs = resources[0].source();
        let vs = (vs.line, vs.column);
        assert_eq!(vs, (2, 1));
        assert_eq!(at(&map, vs, "spec.hosts"), (6, 3));
        assert_eq!(at(&map, vs, "spec.hosts[0]"), (6, 11));
        assert_eq!(at(&map, vs, "spec.http[0]"), (8, 5));
        assert_eq!(at(&map, vs, "spec.http[0].match[0].uri.prefix"), (9, 13));
        assert_eq!(
            at(&map, vs, "spec.http[0].route[0].destination.subset"),
            (11, 36)
        );
        assert_eq!(
            at(&map, vs, "spec.http[0].route[1].destination.subset"),
            (14, 9)
        );
        // Absent fields fall back to the deepest part that exists.
        assert_eq!(at(&map, vs, "spec.http[0].timeout"), (8, 5));
        assert_eq!(at(&map, vs, "spec.http[3].route"), (7, 3));
        assert_eq!(at(&map, vs, ""), (2, 1));

        let dr = resources[1].source();
        let dr = (dr.line, dr.column);
        assert_eq!(dr, (16, 1));
        assert_eq!(at(&map, dr, "metadata.name"), (19, 3));
        assert_eq!(at(&map, dr, "spec.subsets[0].name"), (23, 5));
        assert_eq!(
            at(
                &map,
                dr,
                r#"spec.subsets[0].labels["app.kubernetes.io/name"]"#
            ),
            (24, 27)
        );
        assert_eq!(map.locate((99, 1), &[]), None);
    }

    #[test]
    fn list_items_are_resources() {
        let text = "\
apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: ServiceEntry
  metadata: {name: a}
  spec:
    hosts: [a.example.com]
- apiVersion: networking.istio.io/v1
  kind: ServiceEntry
  metadata: {name: b}
  spec:
    hosts:
    - b.example.com
";
        let resources = parse_str(text, Path::new("l.yaml"), "default").unwrap();
        let map = FileMap::parse(text);
        let starts: Vec<Pos> = resources
            .iter()
            .map(|r| (r.source().line, r.source().column))
            .collect();
        assert_eq!(starts, [(4, 3), (9, 3)]);
        assert_eq!(at(&map, starts[0], "spec.hosts[0]"), (8, 13));
        assert_eq!(at(&map, starts[1], "spec.hosts[0]"), (14, 7));
        assert_eq!(at(&map, starts[1], "metadata.name"), (11, 14));
    }

    #[test]
    fn json_flow_and_aliases() {
        let text = r#"{"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
 "metadata": {"name": "a"}, "spec": {"hosts": ["a.example.com"]}}"#;
        let resources = parse_str(text, Path::new("j.json"), "default").unwrap();
        let map = FileMap::parse(text);
        let s = resources[0].source();
        assert_eq!(at(&map, (s.line, s.column), "spec.hosts[0]"), (2, 48));

        let text = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a}
spec:
  host: a
  trafficPolicy: &tp
    connectionPool: {tcp: {maxConnections: 1}}
  subsets:
  - name: v1
    trafficPolicy: *tp
";
        let map = FileMap::parse(text);
        assert_eq!(
            at(
                &map,
                (1, 1),
                "spec.subsets[0].trafficPolicy.connectionPool.tcp"
            ),
            (7, 22)
        );
    }

    #[test]
    fn unreadable_or_unknown_files_keep_the_resource_start() {
        let mut sources = SourceMap::default();
        let start = Location::new("/nonexistent/x.yaml", 4, 1);
        assert_eq!(sources.locate(&start, "spec.hosts"), start);
        let memory = Location::default();
        assert_eq!(sources.locate(&memory, "spec"), memory);
    }

    #[test]
    fn broken_yaml_keeps_what_came_before() {
        let text = "apiVersion: v1\nkind: X\nspec:\n  a: [1, 2\n";
        let map = FileMap::parse(text);
        assert_eq!(map.locate((1, 1), &parse_path("spec")), None);
    }
}
