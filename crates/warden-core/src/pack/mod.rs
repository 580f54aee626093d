//! Pattern packs: detection rules as data (TOML), their loading and checking.
//!
//! The schema is documented field by field in `patterns/README.md`. A pack is
//! parsed and checked for shape here; regexes and validators are compiled
//! when a [`Scanner`](crate::Scanner) is built, and errors name the file and rule.

mod examples;

use std::path::Path;

use crate::config::ListEntry;
use crate::error::{Error, ErrorKind};

pub use examples::{check_examples, ExampleFailure, ExampleReport, FailureKind};

/// The default packs, compiled into the binary: `(path under patterns/, TOML)`.
const BUILTIN: &[(&str, &str)] = &[
    (
        "pii/email.toml",
        include_str!("../../../../patterns/pii/email.toml"),
    ),
    (
        "pii/phone.toml",
        include_str!("../../../../patterns/pii/phone.toml"),
    ),
    (
        "pii/financial.toml",
        include_str!("../../../../patterns/pii/financial.toml"),
    ),
    (
        "pii/government_id.toml",
        include_str!("../../../../patterns/pii/government_id.toml"),
    ),
    (
        "pii/network.toml",
        include_str!("../../../../patterns/pii/network.toml"),
    ),
    (
        "pii/date_of_birth.toml",
        include_str!("../../../../patterns/pii/date_of_birth.toml"),
    ),
    (
        "pii/crypto.toml",
        include_str!("../../../../patterns/pii/crypto.toml"),
    ),
    (
        "pii/person.toml",
        include_str!("../../../../patterns/pii/person.toml"),
    ),
    (
        "pii/address.toml",
        include_str!("../../../../patterns/pii/address.toml"),
    ),
    (
        "secrets/api_keys.toml",
        include_str!("../../../../patterns/secrets/api_keys.toml"),
    ),
    (
        "secrets/private_key.toml",
        include_str!("../../../../patterns/secrets/private_key.toml"),
    ),
    (
        "secrets/tokens.toml",
        include_str!("../../../../patterns/secrets/tokens.toml"),
    ),
];

/// The default packs compiled into the binary, as `(path, TOML source)`
/// pairs; paths are relative to `patterns/`, e.g. `pii/email.toml`.
pub fn builtin_pack_sources() -> &'static [(&'static str, &'static str)] {
    BUILTIN
}

/// Parse every built-in pack (origins are `builtin:<path>`).
///
/// # Errors
/// Only if a built-in pack is malformed, which the test suite rules out.
pub fn builtin_packs() -> Result<Vec<Pack>, Error> {
    BUILTIN
        .iter()
        .map(|(path, src)| Pack::parse(src, &format!("builtin:{path}")))
        .collect()
}

/// Load every `*.toml` pack under `dir`, recursively, in path order.
/// A directory named `injection` is skipped (those packs belong to the
/// injection detector).
///
/// # Errors
/// [`ErrorKind::Io`] if the directory cannot be read; [`ErrorKind::Pack`]
/// naming the file (and rule) for a malformed pack.
pub fn load_dir(dir: &Path) -> Result<Vec<Pack>, Error> {
    let mut files = Vec::new();
    collect_toml(dir, &mut files)?;
    files.sort();
    files
        .iter()
        .map(|p| {
            let shown = p.display().to_string();
            let src = std::fs::read_to_string(p)
                .map_err(|e| Error::new(ErrorKind::Io, e.to_string()).with_file(shown.clone()))?;
            Pack::parse(&src, &shown)
        })
        .collect()
}

fn collect_toml(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), Error> {
    let io = |e: std::io::Error| {
        Error::new(ErrorKind::Io, e.to_string()).with_file(dir.display().to_string())
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "injection") {
                continue;
            }
            collect_toml(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    Ok(())
}

/// A parsed pattern pack: one TOML file of rules of one family.
///
/// # Example
/// ```
/// use warden_core::Pack;
/// let src = r#"
/// [[rule]]
/// id = "acme.ticket"
/// entity = "TICKET_ID"
/// regex = 'ACME-[0-9]{6}'
/// prefilter = { literals = ["ACME-"] }
/// score = 0.8
/// description = "Internal ticket ids"
/// positive = [
///   { text = "see ACME-123456", match = "ACME-123456" },
///   { text = "ACME-000001 done", match = "ACME-000001" },
///   { text = "x ACME-999999.", match = "ACME-999999" },
/// ]
/// negative = ["ACME-12345", "acme-123456", "ACMEX-123456"]
/// "#;
/// let pack = Pack::parse(src, "acme.toml").unwrap();
/// assert_eq!(pack.rules()[0].id, "acme.ticket");
/// ```
#[derive(Debug, Clone)]
pub struct Pack {
    origin: String,
    name: String,
    description: String,
    rules: Vec<RuleSpec>,
    exclude: Vec<ListEntry>,
}

impl Pack {
    /// Parse a pack from TOML source. `origin` (a path or `builtin:...`)
    /// is used in error messages and example reports.
    ///
    /// # Errors
    /// [`ErrorKind::Pack`] with file, line and rule id where known: TOML
    /// syntax, unknown fields, empty or duplicate ids, a rule without an
    /// anchor, an unknown validator, an example span that is not in its text.
    /// Regexes are compiled (and rejected) by
    /// [`ScannerBuilder::build`](crate::ScannerBuilder::build).
    pub fn parse(src: &str, origin: &str) -> Result<Pack, Error> {
        let raw: raw::PackFile = toml::from_str(src).map_err(|e| {
            let line = e.span().map(|s| line_of(src, s.start));
            let mut err = Error::new(ErrorKind::Pack, e.message().to_string()).with_file(origin);
            if let Some(l) = line {
                err = err.with_line(l);
            }
            // Name the rule when the error sits inside one.
            if let Some(id) = e.span().and_then(|s| rule_id_before(src, s.start)) {
                err = err.with_rule(id);
            }
            err
        })?;
        let mut rules = Vec::with_capacity(raw.rule.len());
        for r in raw.rule {
            let line = line_of(src, r.span().start);
            let r = r.into_inner();
            let fail = |reason: String| {
                Error::new(ErrorKind::Pack, reason)
                    .with_file(origin)
                    .with_line(line)
                    .with_rule(r.id.clone())
            };
            if r.id.is_empty() || r.id.chars().any(char::is_whitespace) {
                return Err(Error::new(
                    ErrorKind::Pack,
                    "rule id must be non-empty without spaces",
                )
                .with_file(origin)
                .with_line(line));
            }
            if rules.iter().any(|x: &RuleSpec| x.id == r.id) {
                return Err(fail("duplicate rule id".into()));
            }
            if r.entity.is_empty()
                || !r
                    .entity
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(fail(format!(
                    "entity {:?} must match [A-Z][A-Z0-9_]*",
                    r.entity
                )));
            }
            if !(0.0..=1.0).contains(&r.score) {
                return Err(fail(format!("score {} is outside [0, 1]", r.score)));
            }
            if let Some(v) = &r.validator {
                if crate::validate::by_name(v).is_none() {
                    let known: Vec<&str> =
                        crate::validate::REGISTRY.iter().map(|(n, _)| *n).collect();
                    return Err(fail(format!(
                        "unknown validator {v:?} (known: {})",
                        known.join(", ")
                    )));
                }
            }
            let pf = &r.prefilter;
            let kinds = usize::from(!pf.literals.is_empty())
                + usize::from(pf.digits.is_some())
                + usize::from(pf.context);
            if kinds != 1 {
                return Err(fail(
                    "prefilter must set exactly one of `literals`, `digits` or `context = true`"
                        .into(),
                ));
            }
            if pf.context && r.context.words.is_empty() {
                return Err(fail(
                    "prefilter `context = true` needs context.words".into(),
                ));
            }
            if pf.inside
                && (pf.literals.is_empty()
                    || pf.word
                    || pf.glued
                    || pf.literals.iter().any(|l| l.len() < 3))
            {
                return Err(fail(
                    "prefilter `inside = true` needs `literals` of three bytes or more (not whole words, not glued)"
                        .into(),
                ));
            }
            if pf.glued && (pf.context || pf.word) {
                return Err(fail(
                    "prefilter `glued = true` needs `literals` (not whole words) or `digits`"
                        .into(),
                ));
            }
            let mut positive = Vec::with_capacity(r.positive.len());
            for ex in r.positive {
                let ex_line = line_of(src, ex.span().start);
                let ex = ex.into_inner();
                let span = match (&ex.r#match, ex.start, ex.end) {
                    (Some(m), None, None) => match ex.text.find(m.as_str()) {
                        Some(s) if !m.is_empty() => (s, s + m.len()),
                        _ => return Err(fail(format!("line {ex_line}: `match` is not a substring of `text`"))),
                    },
                    (None, Some(s), Some(e)) if s < e && ex.text.get(s..e).is_some() => (s, e),
                    (None, None, None) => (0, ex.text.len()),
                    _ => {
                        return Err(fail(format!(
                            "line {ex_line}: a positive example sets either `match` or a valid `start`/`end`, not both"
                        )))
                    }
                };
                positive.push(PositiveExample {
                    text: ex.text,
                    key: ex.key,
                    start: span.0,
                    end: span.1,
                    line: ex_line,
                });
            }
            rules.push(RuleSpec {
                id: r.id,
                entity: r.entity,
                description: r.description,
                regex: r.regex,
                case_insensitive: r.case_insensitive,
                group: r.group,
                prefilter: Prefilter {
                    literals: r.prefilter.literals,
                    case_insensitive: r.prefilter.case_insensitive,
                    word: r.prefilter.word,
                    digits: r.prefilter.digits.map(|d| DigitRun {
                        min: d.min,
                        max: d.max,
                        requires: d.requires,
                        starts: d.starts,
                        letters_before: d.letters_before,
                        letters_after: d.letters_after,
                        requires_min: d.requires_min.max(1),
                        min_word: d.min_word,
                        separators: d.separators,
                        letters_touch: d.letters_touch,
                    }),
                    context: r.prefilter.context,
                    glued: r.prefilter.glued,
                    inside: r.prefilter.inside,
                    next: r.prefilter.next,
                    before: r.prefilter.before,
                    after: r.prefilter.after,
                },
                validator: r.validator,
                score: r.score,
                context: Context {
                    words: r.context.words,
                    negative: r.context.negative,
                    before: r.context.before,
                    after: r.context.after,
                    boost: r.context.boost,
                    penalty: r.context.penalty,
                    required: r.context.required,
                },
                exclude: r.exclude,
                positive,
                negative: r
                    .negative
                    .into_iter()
                    .map(|n| match n {
                        raw::Negative::Text(text) => NegativeExample { text, key: None },
                        raw::Negative::Keyed { text, key } => NegativeExample { text, key },
                    })
                    .collect(),
                line,
            });
        }
        Ok(Pack {
            origin: origin.to_string(),
            name: raw.pack.name,
            description: raw.pack.description,
            rules,
            exclude: raw.exclude,
        })
    }

    /// Where the pack came from (a path or `builtin:<path>`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The pack's name (`[pack] name`), possibly empty.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pack's description, possibly empty.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[RuleSpec] {
        &self.rules
    }

    /// Pack-wide exclusions (values never reported by this pack's rules).
    pub fn exclusions(&self) -> &[ListEntry] {
        &self.exclude
    }
}

fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes()[..offset.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The `id = "..."` of the last `[[rule]]` header before `offset`, if any.
fn rule_id_before(src: &str, offset: usize) -> Option<String> {
    let head = src.get(..offset.min(src.len()))?;
    let start = head.rfind("[[rule]]")?;
    src[start..].lines().skip(1).find_map(|l| {
        let l = l.trim();
        let v = l.strip_prefix("id")?.trim_start().strip_prefix('=')?.trim();
        Some(v.trim_matches(|c| c == '"' || c == '\'').to_string())
    })
}

/// One detection rule, as written in a pack (see `patterns/README.md`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RuleSpec {
    /// Unique id, e.g. `pii.email`.
    pub id: String,
    /// Entity type reported, e.g. `EMAIL`.
    pub entity: String,
    /// What the rule finds, for reviewers.
    pub description: String,
    /// Linear-time regex (ASCII classes; `\d`, `\w`, `\b` are ASCII).
    pub regex: String,
    /// Compile the regex case-insensitively.
    pub case_insensitive: bool,
    /// Capture group whose span is reported (0 = whole match).
    pub group: usize,
    /// How candidates are found cheaply before the regex runs.
    pub prefilter: Prefilter,
    /// Validator name from [`crate::validate::REGISTRY`].
    pub validator: Option<String>,
    /// Base score in `[0, 1]`.
    pub score: f32,
    /// Context words that raise or lower the score.
    pub context: Context,
    /// Values this rule never reports.
    pub exclude: Vec<ListEntry>,
    /// Positive examples with their expected span.
    pub positive: Vec<PositiveExample>,
    /// Texts in which this rule's entity must not be found.
    pub negative: Vec<NegativeExample>,
    /// 1-based line of the rule in its pack.
    pub line: usize,
}

/// Candidate selection for a rule: exactly one of `literals`, `digits`, `context`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Prefilter {
    /// Literal anchors (found in one Aho-Corasick pass over the text).
    pub literals: Vec<String>,
    /// Match the literals ASCII-case-insensitively.
    pub case_insensitive: bool,
    /// Literals must stand as whole words (no letter/digit on either side).
    pub word: bool,
    /// Anchor on runs of digits (with separators) of at least this many digits.
    pub digits: Option<DigitRun>,
    /// Anchor on the rule's context words (for rules that require context).
    pub context: bool,
    /// Also find the value glued to the word around it (`ref4111…`,
    /// `acme.ioghp_…`): where letters touch a digit run, or at a literal
    /// inside a word, the regex runs on the text cut there, so its `\b`
    /// holds. For values whose checksum or distinctive prefix keeps
    /// look-alikes out.
    pub glued: bool,
    /// Look for the literals only inside words, as the last part of a
    /// compound that a space and a number follow (the `straße` of
    /// `Hauptstraße 42`), and run the regex there with its `before` window.
    /// The scanner checks the word before each digit run, so this costs
    /// nothing elsewhere.
    pub inside: bool,
    /// A byte class (`'[A-Z:,\n]'`) that must come right after a literal
    /// anchor and any spaces or tabs: the person cues ("customer", "thanks")
    /// are mostly followed by a lower-case word, which this rules out
    /// before the regex runs.
    pub next: Option<String>,
    /// Bytes before the anchor the regex may start in.
    pub before: usize,
    /// Bytes after the anchor the regex may end in.
    pub after: usize,
}

/// A digit-run anchor: a run of digits with single separators (` -./()+:`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DigitRun {
    /// Minimum number of digits in the run.
    pub min: usize,
    /// Maximum number of digits in the run; 0 for no limit. For identifiers
    /// of a fixed length, so the first digits of a longer number are not
    /// taken for one.
    pub max: usize,
    /// If non-empty, the run (or the eight bytes before it, the two after) must
    /// contain at least one of these characters.
    pub requires: String,
    /// If non-empty, the run must start with one of these characters.
    pub starts: String,
    /// The run must follow this many ASCII upper-case letters, directly or
    /// after one space or dash (e.g. 2 for the country code of an IBAN).
    pub letters_before: usize,
    /// The run must be followed by this many ASCII upper-case letters,
    /// directly or after one space or dash (e.g. 1 for the control letter
    /// of a Spanish DNI).
    pub letters_after: usize,
    /// How many of the `requires` characters the run (with the bytes around
    /// it, as above) must hold in all, e.g. 3 dots for an IPv4 address. At least 1.
    pub requires_min: usize,
    /// If non-zero, the run must begin a word (no ASCII letter or digit
    /// before it) of at least this many ASCII letters and digits, e.g. 26
    /// for a base58 Bitcoin address.
    pub min_word: usize,
    /// If set, the only separators the run may hold: `""` for digits
    /// written together (a Spanish DNI), `" "` for digits grouped by spaces.
    pub separators: Option<String>,
    /// The `letters_before`/`letters_after` letters touch the run, with no
    /// space or dash between (the country code of an IBAN).
    pub letters_touch: bool,
}

/// Context words of a rule.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Context {
    /// Words (or phrases) that raise the score, matched as whole words,
    /// ASCII-case-insensitively.
    pub words: Vec<String>,
    /// Words that lower the score.
    pub negative: Vec<String>,
    /// Bytes before the match searched for context.
    pub before: usize,
    /// Bytes after the match searched for context.
    pub after: usize,
    /// Score added when a context word is present.
    pub boost: f32,
    /// Score removed when a negative word is present.
    pub penalty: f32,
    /// Drop the match unless a context word (or JSON key) is present.
    pub required: bool,
}

/// A positive example: `text` must yield the rule's entity at `start..end`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PositiveExample {
    /// The example text.
    pub text: String,
    /// JSON key to scan it under ([`Scanner::scan_with_key`](crate::Scanner::scan_with_key)).
    pub key: Option<String>,
    /// Expected span start (bytes).
    pub start: usize,
    /// Expected span end (bytes).
    pub end: usize,
    /// 1-based line of the example in its pack.
    pub line: usize,
}

/// A negative example: the rule's entity must not be found in `text`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NegativeExample {
    /// The example text.
    pub text: String,
    /// JSON key to scan it under, if any.
    pub key: Option<String>,
}

/// Serde shapes of the TOML file. Kept private so the public types can hold
/// derived data (spans, lines) and evolve independently of the file format.
mod raw {
    use serde::Deserialize;
    use toml::Spanned;

    use crate::config::ListEntry;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct PackFile {
        #[serde(default)]
        pub pack: PackMeta,
        #[serde(default)]
        pub rule: Vec<Spanned<Rule>>,
        #[serde(default)]
        pub exclude: Vec<ListEntry>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct PackMeta {
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub description: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Rule {
        pub id: String,
        pub entity: String,
        pub regex: String,
        #[serde(default)]
        pub description: String,
        #[serde(default)]
        pub case_insensitive: bool,
        #[serde(default)]
        pub group: usize,
        pub prefilter: Prefilter,
        #[serde(default)]
        pub validator: Option<String>,
        pub score: f32,
        #[serde(default)]
        pub context: Context,
        #[serde(default)]
        pub exclude: Vec<ListEntry>,
        #[serde(default)]
        pub positive: Vec<Spanned<Positive>>,
        #[serde(default)]
        pub negative: Vec<Negative>,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum Negative {
        Text(String),
        Keyed {
            text: String,
            #[serde(default)]
            key: Option<String>,
        },
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Prefilter {
        #[serde(default)]
        pub literals: Vec<String>,
        #[serde(default)]
        pub case_insensitive: bool,
        #[serde(default)]
        pub word: bool,
        #[serde(default)]
        pub digits: Option<Digits>,
        #[serde(default)]
        pub context: bool,
        #[serde(default)]
        pub glued: bool,
        #[serde(default)]
        pub inside: bool,
        #[serde(default)]
        pub next: Option<String>,
        #[serde(default = "default_before")]
        pub before: usize,
        #[serde(default = "default_after")]
        pub after: usize,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Digits {
        pub min: usize,
        #[serde(default)]
        pub max: usize,
        #[serde(default)]
        pub requires: String,
        #[serde(default)]
        pub starts: String,
        #[serde(default)]
        pub letters_before: usize,
        #[serde(default)]
        pub letters_after: usize,
        #[serde(default = "one")]
        pub requires_min: usize,
        #[serde(default)]
        pub min_word: usize,
        #[serde(default)]
        pub separators: Option<String>,
        #[serde(default)]
        pub letters_touch: bool,
    }

    fn one() -> usize {
        1
    }

    fn default_before() -> usize {
        0
    }
    fn default_after() -> usize {
        256
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Context {
        pub words: Vec<String>,
        pub negative: Vec<String>,
        pub before: usize,
        pub after: usize,
        pub boost: f32,
        pub penalty: f32,
        pub required: bool,
    }

    impl Default for Context {
        fn default() -> Self {
            Context {
                words: Vec::new(),
                negative: Vec::new(),
                before: 48,
                after: 32,
                boost: 0.2,
                penalty: 0.3,
                required: false,
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Positive {
        pub text: String,
        #[serde(default)]
        pub key: Option<String>,
        #[serde(default)]
        pub r#match: Option<String>,
        #[serde(default)]
        pub start: Option<usize>,
        #[serde(default)]
        pub end: Option<usize>,
    }
}
