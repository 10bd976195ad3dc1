//! Reads the deployment artefacts (deploy/kubernetes.yaml, Dockerfile) for the deploy tests.
//!
//! Shared by tests/deploy.rs, tests/scratch_root.rs and tests/podman.rs, so each test crate uses
//! only part of it.
//! The YAML reader handles exactly the block-style subset the manifest is written in (mappings,
//! sequences, plain and quoted scalars, comments, `---` documents) and panics on anything else,
//! so the tests need no YAML dependency. Full schema validation is deploy/validate.sh's job.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default `--shutdown-delay`, `--drain-timeout`, `--heartbeat` and `--live-file` from the CLI
/// contract, used when the manifest does not pass the flag.
pub const DEFAULT_SHUTDOWN_DELAY: Duration = Duration::from_secs(5);
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
pub const DEFAULT_LIVE_FILE: &str = "/tmp/lameduck.live";
/// Default `lameduck live --max-age`: how stale the liveness file may be.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(10);
/// The margin the server itself demands: delay + drain timeout + 2 s <= grace period.
pub const GRACE_MARGIN: Duration = Duration::from_secs(2);

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    let path = repo_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// YAML subset

#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Scalar(String),
    Map(Vec<(String, Yaml)>),
    Seq(Vec<Yaml>),
    Null,
}

impl Yaml {
    /// Follows a dotted path of keys and sequence indices: `spec.template.spec.containers.0`.
    pub fn get(&self, path: &str) -> Option<&Yaml> {
        path.split('.').try_fold(self, |node, step| match node {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == step).map(|(_, v)| v),
            Yaml::Seq(items) => items.get(step.parse::<usize>().ok()?),
            _ => None,
        })
    }

    /// Like `get`, but a missing path is a test failure that names it.
    pub fn at(&self, path: &str) -> &Yaml {
        self.get(path)
            .unwrap_or_else(|| panic!("manifest has no `{path}`"))
    }

    pub fn str(&self, path: &str) -> &str {
        match self.at(path) {
            Yaml::Scalar(s) => s,
            other => panic!("`{path}` is not a scalar: {other:?}"),
        }
    }

    pub fn u64(&self, path: &str) -> u64 {
        let s = self.str(path);
        s.parse()
            .unwrap_or_else(|_| panic!("`{path}` is not an integer: {s:?}"))
    }

    pub fn bool(&self, path: &str) -> bool {
        match self.str(path) {
            "true" => true,
            "false" => false,
            s => panic!("`{path}` is not a boolean: {s:?}"),
        }
    }

    pub fn items(&self, path: &str) -> &[Yaml] {
        match self.at(path) {
            Yaml::Seq(items) => items,
            other => panic!("`{path}` is not a sequence: {other:?}"),
        }
    }

    /// A sequence of scalars (args, command), as strings.
    pub fn strs(&self, path: &str) -> Vec<String> {
        let items = self.items(path);
        items
            .iter()
            .map(|item| match item {
                Yaml::Scalar(s) => s.clone(),
                other => panic!("`{path}` holds a non-scalar: {other:?}"),
            })
            .collect()
    }
}

/// One non-blank, non-comment line: its indentation and its content without the comment.
#[derive(Debug, Clone)]
struct Line {
    indent: usize,
    text: String,
    number: usize,
}

/// Parses every `---`-separated document.
pub fn parse_documents(source: &str) -> Vec<Yaml> {
    let mut documents = vec![Vec::new()];
    for (index, raw) in source.lines().enumerate() {
        if raw.trim_end() == "---" {
            documents.push(Vec::new());
            continue;
        }
        assert!(
            !raw.contains('\t'),
            "line {}: tabs are not YAML indentation",
            index + 1
        );
        let text = strip_comment(raw).trim_end();
        if text.trim().is_empty() {
            continue;
        }
        let indent = text.len() - text.trim_start().len();
        let line = Line {
            indent,
            text: text.trim_start().to_string(),
            number: index + 1,
        };
        documents.last_mut().expect("starts with one").push(line);
    }
    documents
        .into_iter()
        .filter(|lines| !lines.is_empty())
        .map(|mut lines| {
            let mut pos = 0;
            let indent = lines[0].indent;
            let node = parse_block(&mut lines, &mut pos, indent);
            if let Some(line) = lines.get(pos) {
                panic!(
                    "line {}: unexpected indentation: {:?}",
                    line.number, line.text
                );
            }
            node
        })
        .collect()
}

/// Drops a `#` comment: one that starts the line or follows a space, outside quotes.
fn strip_comment(raw: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in raw.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if previous == ' ' => return &raw[..i],
            _ => {}
        }
        previous = c;
    }
    raw
}

fn parse_block(lines: &mut [Line], pos: &mut usize, indent: usize) -> Yaml {
    if is_item(&lines[*pos].text) {
        parse_seq(lines, pos, indent)
    } else {
        parse_map(lines, pos, indent)
    }
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

fn parse_map(lines: &mut [Line], pos: &mut usize, indent: usize) -> Yaml {
    let mut entries = Vec::new();
    while *pos < lines.len() && lines[*pos].indent == indent && !is_item(&lines[*pos].text) {
        let line = lines[*pos].clone();
        let (key, rest) = split_key(&line.text).unwrap_or_else(|| {
            panic!(
                "line {}: expected `key: value`: {:?}",
                line.number, line.text
            )
        });
        *pos += 1;
        let value = if !rest.is_empty() {
            scalar(rest, line.number)
        } else if let Some(next) = lines.get(*pos) {
            // A nested block, or a sequence written at the key's own indentation.
            if next.indent > indent || (next.indent == indent && is_item(&next.text)) {
                let child_indent = next.indent;
                parse_block(lines, pos, child_indent)
            } else {
                Yaml::Null
            }
        } else {
            Yaml::Null
        };
        assert!(
            entries.iter().all(|(k, _)| k != &key),
            "line {}: duplicate key `{key}`",
            line.number
        );
        entries.push((key, value));
    }
    Yaml::Map(entries)
}

fn parse_seq(lines: &mut [Line], pos: &mut usize, indent: usize) -> Yaml {
    let mut items = Vec::new();
    while *pos < lines.len() && lines[*pos].indent == indent && is_item(&lines[*pos].text) {
        let line = lines[*pos].clone();
        let content = line.text[1..].trim_start();
        if content.is_empty() {
            *pos += 1;
            match lines.get(*pos) {
                Some(next) if next.indent > indent => {
                    let child_indent = next.indent;
                    items.push(parse_block(lines, pos, child_indent));
                }
                _ => items.push(Yaml::Null),
            }
        } else if split_key(content).is_some() {
            // `- key: value` opens a mapping whose further keys line up with `key`.
            let content_indent = indent + (line.text.len() - content.len());
            lines[*pos] = Line {
                indent: content_indent,
                text: content.to_string(),
                number: line.number,
            };
            items.push(parse_map(lines, pos, content_indent));
        } else {
            *pos += 1;
            items.push(scalar(content, line.number));
        }
    }
    Yaml::Seq(items)
}

/// `key: rest` or `key:`; `None` for a plain scalar (including quoted ones holding `: `).
fn split_key(text: &str) -> Option<(String, &str)> {
    if text.starts_with('"') || text.starts_with('\'') {
        return None;
    }
    let (key, rest) = match text.find(": ") {
        Some(i) => (&text[..i], text[i + 2..].trim()),
        None => (text.strip_suffix(':')?, ""),
    };
    Some((key.to_string(), rest))
}

fn scalar(text: &str, number: usize) -> Yaml {
    for quote in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(quote) {
            let inner = inner
                .strip_suffix(quote)
                .unwrap_or_else(|| panic!("line {number}: unterminated quote: {text}"));
            assert!(
                !inner.contains('\\'),
                "line {number}: escapes are not supported: {text}"
            );
            return Yaml::Scalar(inner.to_string());
        }
    }
    let unsupported = ['[', '{', '|', '>', '&', '*', '!'];
    assert!(
        !text.starts_with(unsupported),
        "line {number}: flow style, block scalars, anchors and tags are not supported: {text}"
    );
    match text {
        "null" | "~" => Yaml::Null,
        _ => Yaml::Scalar(text.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// The Kubernetes manifest

pub const MANIFEST: &str = "deploy/kubernetes.yaml";

pub struct Manifest {
    pub documents: Vec<Yaml>,
}

impl Manifest {
    pub fn load() -> Manifest {
        Manifest {
            documents: parse_documents(&read(MANIFEST)),
        }
    }

    pub fn kind(&self, kind: &str) -> &Yaml {
        let mut found = self
            .documents
            .iter()
            .filter(|d| d.get("kind") == Some(&scalar_of(kind)));
        let document = found
            .next()
            .unwrap_or_else(|| panic!("{MANIFEST} has no {kind}"));
        assert!(
            found.next().is_none(),
            "{MANIFEST} has more than one {kind}"
        );
        document
    }

    pub fn deployment(&self) -> &Yaml {
        self.kind("Deployment")
    }

    pub fn pod_spec(&self) -> &Yaml {
        self.deployment().at("spec.template.spec")
    }

    /// The lameduck container (the only one).
    pub fn container(&self) -> &Yaml {
        let containers = self.pod_spec().items("containers");
        assert_eq!(containers.len(), 1, "expected exactly one container");
        &containers[0]
    }

    /// The server's argv after the image's ENTRYPOINT.
    pub fn args(&self) -> Vec<String> {
        self.container().strs("args")
    }

    /// The livenessProbe's exec command, argv[0] included.
    pub fn liveness_command(&self) -> Vec<String> {
        self.container().strs("livenessProbe.exec.command")
    }

    /// A duration flag of the server, or its contract default.
    pub fn server_duration(&self, name: &str, default: Duration) -> Duration {
        flag(&self.args(), name).map_or(default, |v| parse_duration(&v))
    }

    pub fn server_live_file(&self) -> String {
        flag(&self.args(), "--live-file").unwrap_or_else(|| DEFAULT_LIVE_FILE.to_string())
    }

    pub fn termination_grace_period(&self) -> Duration {
        Duration::from_secs(self.pod_spec().u64("terminationGracePeriodSeconds"))
    }

    /// The pod's runAsUser; a container-level one, if any, must agree (one source of truth).
    pub fn run_as_user(&self) -> u32 {
        self.pod_security_id("runAsUser")
    }

    pub fn run_as_group(&self) -> u32 {
        self.pod_security_id("runAsGroup")
    }

    fn pod_security_id(&self, key: &str) -> u32 {
        let path = format!("securityContext.{key}");
        let id = self.pod_spec().u64(&path);
        if self.container().get(&path).is_some() {
            assert_eq!(
                self.container().u64(&path),
                id,
                "container and pod {key} differ"
            );
        }
        id.try_into().expect("id fits in u32")
    }
}

fn scalar_of(s: &str) -> Yaml {
    Yaml::Scalar(s.to_string())
}

// ---------------------------------------------------------------------------------------------
// Flags and durations, as the CLI contract defines them

/// The value of `--name value` or `--name=value` in an argv; the last one wins.
pub fn flag(args: &[String], name: &str) -> Option<String> {
    let mut value = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == name {
            value = Some(
                iter.next()
                    .unwrap_or_else(|| panic!("{name} has no value"))
                    .clone(),
            );
        } else if let Some(v) = arg
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
        {
            value = Some(v.to_string());
        }
    }
    value
}

/// The argv with `name`'s value replaced (or the flag appended): the tests run the manifest's
/// argv, but on an ephemeral loopback port or a temporary liveness file.
pub fn with_flag(args: &[String], name: &str, value: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() + 2);
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == name {
            iter.next(); // its old value
        } else if !arg.starts_with(&format!("{name}=")) {
            out.push(arg.clone());
        }
    }
    out.push(name.to_string());
    out.push(value.to_string());
    out
}

/// "0", "500ms", "5s", "2m"; a bare integer is seconds.
pub fn parse_duration(s: &str) -> Duration {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let n: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("bad duration {s:?}"));
    match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => panic!("bad duration unit in {s:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile

pub const DOCKERFILE: &str = "Dockerfile";

/// The Dockerfile's stages in order, each as its instructions with continuation lines joined and
/// comments dropped, as (INSTRUCTION, arguments); a stage starts with its `FROM`.
pub fn dockerfile_stages() -> Vec<Vec<(String, String)>> {
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    let mut pending = String::new();
    for raw in read(DOCKERFILE).lines() {
        let line = raw.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let full = std::mem::take(&mut pending);
        let (name, rest) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        let name = name.to_ascii_uppercase();
        if name == "FROM" || stages.is_empty() {
            stages.push(Vec::new());
        }
        let stage = stages.last_mut().expect("pushed above");
        stage.push((name, rest.trim().to_string()));
    }
    stages
}

/// The instructions of the Dockerfile's last stage (the image that ships).
pub fn dockerfile_final_stage() -> Vec<(String, String)> {
    dockerfile_stages()
        .pop()
        .expect("the Dockerfile has a stage")
}

/// `.dockerignore`, read once: which paths `docker build` sends as the build context. The last
/// pattern that matches a path or one of its parent directories decides, and `!` re-includes.
/// Patterns: `*` within one path segment, `**` for any number of segments, a leading or
/// trailing `/` ignored (as Docker cleans paths).
pub struct DockerIgnore {
    /// (is an exception, the pattern's segments), in file order.
    patterns: Vec<(bool, Vec<String>)>,
}

impl DockerIgnore {
    pub fn load() -> DockerIgnore {
        let patterns = read(".dockerignore")
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (exception, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, line),
                };
                let segments = pattern.trim_matches('/').split('/').map(String::from);
                (exception, segments.collect())
            })
            .collect();
        DockerIgnore { patterns }
    }

    /// Whether `path` (relative to the repository) is sent.
    pub fn sends(&self, path: &str) -> bool {
        let segments: Vec<&str> = path.split('/').collect();
        let mut sent = true;
        for (exception, pattern) in &self.patterns {
            let pattern: Vec<&str> = pattern.iter().map(String::as_str).collect();
            // The path itself or any directory above it.
            if (1..=segments.len()).any(|n| glob_segments(&pattern, &segments[..n])) {
                sent = *exception;
            }
        }
        sent
    }

    /// Whether an exception names a path below `dir`: Docker then walks into `dir` even if `dir`
    /// itself is excluded, and sends what the exception re-includes.
    pub fn reincludes_below(&self, dir: &str) -> bool {
        let dir: Vec<&str> = dir.split('/').collect();
        self.patterns.iter().any(|(exception, pattern)| {
            *exception && pattern.len() > dir.len() && pattern.iter().zip(&dir).all(|(p, d)| p == d)
        })
    }
}

fn glob_segments(pattern: &[&str], path: &[&str]) -> bool {
    match (pattern.first(), path.first()) {
        (None, None) => true,
        (Some(&"**"), _) => {
            glob_segments(&pattern[1..], path)
                || (!path.is_empty() && glob_segments(pattern, &path[1..]))
        }
        (Some(p), Some(s)) => {
            glob_one(p.as_bytes(), s.as_bytes()) && glob_segments(&pattern[1..], &path[1..])
        }
        _ => false,
    }
}

/// `*` matches any run of characters within one segment.
fn glob_one(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| glob_one(rest, &name[skip..])),
        Some((c, rest)) => name.first() == Some(c) && glob_one(rest, &name[1..]),
    }
}

/// The source text of the Dockerfile's last stage, from its `FROM` line to the end of the file,
/// comments included: tests/podman.rs builds exactly these instructions.
pub fn dockerfile_final_stage_source() -> String {
    let text = read(DOCKERFILE);
    let lines: Vec<&str> = text.lines().collect();
    // A FROM that starts an instruction (not one inside a comment or a continued RUN).
    let mut last_from = None;
    let mut continued = false;
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if !continued && trimmed.to_ascii_uppercase().starts_with("FROM ") {
            last_from = Some(index);
        }
        continued = !trimmed.starts_with('#') && line.trim_end().ends_with('\\');
    }
    let start = last_from.expect("the Dockerfile has a FROM");
    lines[start..].join("\n") + "\n"
}

/// Where the Dockerfile's build stage lays out the image's root file system, which the runtime
/// stage copies whole (`COPY --from=build /out/rootfs/ /`).
pub const IMAGE_ROOT: &str = "/out/rootfs";

/// One entry of the image's root file system.
pub struct ImageEntry {
    /// Relative to the root.
    pub path: &'static str,
    pub mode: u32,
    pub is_dir: bool,
}

/// Everything the image holds: the binary (the ENTRYPOINT) and an empty, sticky, world-writable
/// /tmp, both owned by root. tests/deploy.rs checks that the build stage makes exactly these;
/// tests/scratch_root.rs and tests/podman.rs lay them out the same way (tests/deploy/image.rs).
pub const IMAGE_ENTRIES: [ImageEntry; 2] = [
    ImageEntry {
        path: "lameduck",
        mode: 0o555,
        is_dir: false,
    },
    ImageEntry {
        path: "tmp",
        mode: 0o1777,
        is_dir: true,
    },
];

/// A Kubernetes quantity in bytes (`128Mi`, `1Gi`, `500M`, or plain bytes).
pub fn quantity(text: &str) -> u64 {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .unwrap_or_else(|_| panic!("quantity {text:?}"));
    let scale = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" => 1000,
        "M" => 1000 * 1000,
        "G" => 1000 * 1000 * 1000,
        _ => panic!("unit of {text:?}"),
    };
    n * scale
}

/// The arguments of the only `name` instruction of a stage.
pub fn dockerfile_instruction(stage: &[(String, String)], name: &str) -> String {
    let mut found = stage.iter().filter(|(n, _)| n == name);
    let (_, args) = found
        .next()
        .unwrap_or_else(|| panic!("the stage has no {name}"));
    assert!(found.next().is_none(), "the stage has more than one {name}");
    args.clone()
}

/// An exec-form (JSON array of strings) argument list, e.g. `["/lameduck", "live"]`.
pub fn exec_form(text: &str) -> Vec<String> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or_else(|| panic!("not exec form (a shell would be needed): {text}"));
    inner
        .split(',')
        .map(|item| {
            let item = item.trim();
            item.strip_prefix('"')
                .and_then(|i| i.strip_suffix('"'))
                .unwrap_or_else(|| panic!("not a JSON string: {item}"))
                .to_string()
        })
        .collect()
}
