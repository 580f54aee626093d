//! The compiled [`Scanner`]: packs + config in, findings out.
//!
//! Strategy ladder (cheapest first), so that almost every byte of a prompt is
//! looked at once and never again:
//! 1. one Aho-Corasick pass for every rule's literal anchors (`@`, `AKIA`,
//!    `-----BEGIN`, ...) and for the context words of context-anchored rules;
//! 2. one byte loop for runs of digits (cards, phones, SSNs, IPs), gated per
//!    rule by a minimum digit count;
//! 3. only then each candidate rule's small ASCII regex on a bounded window
//!    around the anchor, its validator, and its context words.

mod engine;
mod lists;
mod words;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex_automata::dfa::{dense, regex as dfa_regex};
use regex_automata::meta;
use regex_automata::util::syntax;

use crate::config::ScanConfig;
use crate::error::{Error, ErrorKind};
use crate::finding::Finding;
use crate::pack::{self, Pack, RuleSpec};
use crate::validate::{self, ValidatorFn};

use lists::{AllowList, DenyList};
use words::WordDict;

/// A compiled set of detection rules. Build once, share everywhere: it is
/// `Send + Sync` and cloning it clones an `Arc`.
///
/// # Example
/// ```
/// use warden_core::Scanner;
/// let scanner = Scanner::builtin()?;
/// let text = "card 4111 1111 1111 1111, mail jane@corp.example.com";
/// let found = scanner.scan(text);
/// let kinds: Vec<&str> = found.iter().map(|f| f.entity()).collect();
/// assert_eq!(kinds, ["CREDIT_CARD", "EMAIL"]);
/// # Ok::<(), warden_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Scanner {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rules: Vec<Rule>,
    literals: Option<AhoCorasick>,
    /// Per Aho-Corasick pattern: the rules anchored on it.
    lit_targets: Vec<Vec<LitTarget>>,
    /// Up to three one-byte anchors, found with memchr, and their rules.
    single_bytes: Vec<(u8, Vec<LitTarget>)>,
    /// Whole-word anchors (names, suffixes, context words), looked up per word.
    words: WordDict,
    /// Gates of the rules anchored on digit runs, by ascending minimum
    /// digit count.
    digit_rules: Vec<engine::DigitGate>,
    /// Literals of `inside` rules, looked for at the end of the word before
    /// a digit run, and the rule of each.
    suffixes: Vec<(Box<[u8]>, usize)>,
    /// A bit per [`suffix_bit`] of the literals' last three bytes: most
    /// words before a number end otherwise, and cost one test.
    suffix_bloom: [u64; 4],
    /// Letter-first literals of `glued` rules, looked for inside words, and
    /// per literal the rules to try.
    glued: Option<(AhoCorasick, Vec<Vec<usize>>)>,
    /// Rules anchored on their context words.
    context_rules: Vec<usize>,
    allow: AllowList,
    deny: Option<DenyList>,
    config: ScanConfig,
    packs: Vec<Pack>,
}

#[derive(Debug, Clone)]
struct LitTarget {
    rule: usize,
    word: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    Literal,
    Digits,
    Context,
}

#[derive(Debug)]
struct Rule {
    id: Arc<str>,
    entity: Arc<str>,
    re: meta::Regex,
    /// The same regex as a fully built DFA, when small enough: a cheap,
    /// cache-free test that rules out almost every candidate before the
    /// meta regex (with its per-call setup) runs.
    dfa: Option<Dfa>,
    group: usize,
    validator: Option<(Arc<str>, ValidatorFn)>,
    score: f32,
    anchor: Anchor,
    before: usize,
    after: usize,
    ctx: Option<ContextMatcher>,
    required: bool,
    exclude: AllowList,
    /// `prefilter.glued`: see [`crate::pack::Prefilter::glued`].
    glued: bool,
    /// `prefilter.next`: see [`crate::pack::Prefilter::next`].
    next: Option<ByteSet>,
}

/// A rule's regex as fully built DFAs, for the way the rule is searched.
#[derive(Debug)]
enum Dfa {
    /// Rules searched only at their anchor (`before = 0`): one forward DFA
    /// that starts there, so the match start is known and no reverse
    /// search runs. Without the unanchored start states it stays small
    /// enough also for long alternations such as the person cues.
    Anchored(Box<dense::DFA<Vec<u32>>>),
    /// Rules searched in a window: a forward DFA for the end, a reverse one
    /// for the start.
    Window(Box<dfa_regex::Regex>),
}

/// A set of bytes, tested with one load and mask (a `&[u8]` would cost a
/// `memchr` call per test in the digit-run loop).
#[derive(Debug, Clone, Copy, Default)]
struct ByteSet {
    bits: [u64; 4],
}

impl ByteSet {
    fn of(chars: &str) -> ByteSet {
        let mut set = ByteSet::default();
        for b in chars.bytes() {
            set.bits[usize::from(b >> 6)] |= 1 << (b & 63);
        }
        set
    }

    #[inline]
    fn contains(self, b: u8) -> bool {
        self.bits[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }
}

/// A rule's context words compiled for whole-word, case-insensitive search.
#[derive(Debug)]
struct ContextMatcher {
    /// Words that start with an ASCII letter, looked up per word of the
    /// window (entry `rule` = index into `words`): cheaper than running an
    /// automaton over the window for every finding.
    dict: WordDict,
    /// The other words (if any), by an automaton, with the index into
    /// `words` of each of its patterns.
    rest: Option<(AhoCorasick, Vec<usize>)>,
    /// Per word: the word as written, and its score delta.
    words: Vec<(Arc<str>, f32)>,
    /// Lower-cased words, for matching JSON key names.
    lower: Vec<String>,
    before: usize,
    after: usize,
}

/// Builds a [`Scanner`] from packs and a [`ScanConfig`].
///
/// # Example
/// ```
/// use warden_core::{ScanConfig, Scanner};
/// let cfg = ScanConfig { disabled_entities: vec!["PERSON".into()], ..ScanConfig::default() };
/// let scanner = Scanner::builder().builtin_packs().config(cfg).build()?;
/// assert!(scanner.rule_count() > 20);
/// # Ok::<(), warden_core::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct ScannerBuilder {
    builtin: bool,
    packs: Vec<Pack>,
    config: ScanConfig,
}

impl ScannerBuilder {
    /// Add the default packs compiled into the binary.
    pub fn builtin_packs(mut self) -> Self {
        self.builtin = true;
        self
    }

    /// Add one parsed pack.
    pub fn pack(mut self, pack: Pack) -> Self {
        self.packs.push(pack);
        self
    }

    /// Add every `*.toml` pack under `dir` (recursively; `injection/` is skipped).
    ///
    /// # Errors
    /// I/O errors and malformed packs, naming the file and rule.
    pub fn packs_dir(mut self, dir: &Path) -> Result<Self, Error> {
        self.packs.extend(pack::load_dir(dir)?);
        Ok(self)
    }

    /// Use `config` (min score, disabled rules, allow/deny lists, decoding).
    pub fn config(mut self, config: ScanConfig) -> Self {
        self.config = config;
        self
    }

    /// Compile everything.
    ///
    /// # Errors
    /// [`ErrorKind::Regex`] naming file and rule for a regex that does not
    /// compile (look-around and backreferences are not supported: matching
    /// stays linear-time); [`ErrorKind::Pack`] for duplicate rule ids across
    /// packs; [`ErrorKind::Config`] for bad list entries or unknown ids in
    /// `disabled_rules`.
    pub fn build(self) -> Result<Scanner, Error> {
        let mut packs = if self.builtin {
            pack::builtin_packs()?
        } else {
            Vec::new()
        };
        packs.extend(self.packs);
        Scanner::compile(packs, self.config)
    }
}

/// Largest DFA built for one rule's candidate filter (and the limit on the
/// memory used to build it); rules over it keep only the meta regex.
const DFA_LIMIT: usize = 1 << 15;

/// The same for the forward-only DFAs of anchored rules: the largest
/// built-in one (the person cues) takes 240 KB.
const ANCHORED_DFA_LIMIT: usize = 1 << 18;

/// The one syntax of every rule regex: bytes, ASCII-only classes.
fn ascii_syntax(case_insensitive: bool) -> syntax::Config {
    syntax::Config::new()
        .unicode(false)
        .utf8(false)
        .case_insensitive(case_insensitive)
}

/// `pattern` as a dense DFA with the same syntax as [`compile_regex`], or
/// `None` when it would be too large.
fn compile_dfa(pattern: &str, case_insensitive: bool) -> Option<dfa_regex::Regex> {
    dfa_regex::Builder::new()
        .syntax(ascii_syntax(case_insensitive))
        .dense(
            dense::Config::new()
                .start_kind(regex_automata::dfa::StartKind::Both)
                .dfa_size_limit(Some(DFA_LIMIT))
                .determinize_size_limit(Some(DFA_LIMIT)),
        )
        .build(pattern)
        .ok()
}

/// `pattern` as a forward DFA that only starts at the search start, or
/// `None` when it would be too large.
fn compile_anchored_dfa(pattern: &str, case_insensitive: bool) -> Option<dense::DFA<Vec<u32>>> {
    dense::Builder::new()
        .syntax(ascii_syntax(case_insensitive))
        .configure(
            dense::Config::new()
                .start_kind(regex_automata::dfa::StartKind::Anchored)
                .dfa_size_limit(Some(ANCHORED_DFA_LIMIT))
                .determinize_size_limit(Some(ANCHORED_DFA_LIMIT)),
        )
        .build(pattern)
        .ok()
}

/// Compile a linear-time regex over bytes with ASCII-only classes.
pub(crate) fn compile_regex(pattern: &str, case_insensitive: bool) -> Result<meta::Regex, String> {
    meta::Regex::builder()
        .syntax(ascii_syntax(case_insensitive))
        .build(pattern)
        .map_err(|e| {
            // The syntax error already explains itself (e.g. "look-around ... is
            // not supported"); flatten it to one line.
            let msg = match e.syntax_error() {
                Some(s) => s.to_string(),
                None => e.to_string(),
            };
            msg.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
}

impl Scanner {
    /// The scanner over the default packs with the default config. Compiled
    /// once per process; later calls clone it.
    ///
    /// # Errors
    /// Only if a built-in pack is broken, which the test suite rules out.
    pub fn builtin() -> Result<Scanner, Error> {
        static BUILTIN: OnceLock<Result<Scanner, Error>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| Scanner::builder().builtin_packs().build())
            .clone()
    }

    /// A builder with no packs and the default config.
    pub fn builder() -> ScannerBuilder {
        ScannerBuilder::default()
    }

    /// Number of active rules.
    pub fn rule_count(&self) -> usize {
        self.inner.rules.len()
    }

    /// Ids of the active rules.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.inner.rules.iter().map(|r| &*r.id)
    }

    /// The config the scanner was built with.
    pub fn config(&self) -> &ScanConfig {
        &self.inner.config
    }

    /// The packs the scanner was built from (for [`crate::check_examples`]).
    pub fn packs(&self) -> &[Pack] {
        &self.inner.packs
    }

    /// Find entities in `text`: sorted by start, non-overlapping (where two
    /// candidates overlap, the higher score wins, then the longer span; the
    /// loser keeps the words the winner does not cover, so nothing it found
    /// goes unredacted).
    /// Spans are byte offsets into `text` on `char` boundaries.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        engine::scan(&self.inner, text, None)
    }

    /// Like [`Scanner::scan`], with the JSON object key the text was found
    /// under as extra context (`{"ssn": "..."}` raises SSN scores and
    /// satisfies rules that require context).
    pub fn scan_with_key(&self, text: &str, key: Option<&str>) -> Vec<Finding> {
        engine::scan(&self.inner, text, key)
    }

    fn compile(packs: Vec<Pack>, config: ScanConfig) -> Result<Scanner, Error> {
        for id in &config.disabled_rules {
            if !packs.iter().any(|p| p.rules().iter().any(|r| &r.id == id)) {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("disabled_rules: no rule with id {id:?}"),
                ));
            }
        }
        let mut allow = AllowList::default();
        for e in &config.allow {
            allow.add(e, "config", None)?;
        }
        let deny = DenyList::build(&config.deny)?;

        let mut rules: Vec<Rule> = Vec::new();
        let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        for p in &packs {
            for spec in p.rules() {
                if let Some(other) = seen.insert(spec.id.clone(), p.origin().to_string()) {
                    return Err(Error::new(
                        ErrorKind::Pack,
                        format!("duplicate rule id (also in {other})"),
                    )
                    .with_file(p.origin())
                    .with_line(spec.line)
                    .with_rule(spec.id.clone()));
                }
                if config.disabled_rules.contains(&spec.id)
                    || config.disabled_entities.contains(&spec.entity)
                {
                    continue;
                }
                rules.push(compile_rule(p, spec)?);
            }
        }

        // One case-sensitive, leftmost-longest automaton for every anchor:
        // ASCII case folding multiplies hits ("st", "ac" are everywhere), so
        // case-insensitive literals are entered as lower, Title and UPPER case.
        let mut patterns: Vec<String> = Vec::new();
        let mut lit_targets: Vec<Vec<LitTarget>> = Vec::new();
        let mut add_literal = |lit: &str, ci: bool, target: LitTarget| {
            add_pattern(&mut patterns, &mut lit_targets, lit, ci, target);
        };
        let mut digit_rules = Vec::new();
        let mut suffixes = Vec::new();
        let mut context_rules = Vec::new();
        let mut glued_lits: Vec<String> = Vec::new();
        let mut glued_targets: Vec<Vec<usize>> = Vec::new();
        let mut words = WordDict::default();
        for (i, (r, spec)) in rules.iter().zip(active_specs(&packs, &config)).enumerate() {
            match r.anchor {
                // Literals that start with a letter are looked up per word
                // (cheap) unless they must match inside words.
                Anchor::Literal if spec.prefilter.inside => {
                    for lit in &spec.prefilter.literals {
                        for v in case_variants(lit, spec.prefilter.case_insensitive) {
                            suffixes.push((Box::from(v.as_bytes()), i));
                        }
                    }
                }
                Anchor::Literal => {
                    for lit in &spec.prefilter.literals {
                        let letter_first =
                            lit.as_bytes().first().is_some_and(u8::is_ascii_alphabetic);
                        if spec.prefilter.word && letter_first {
                            words.add(lit, spec.prefilter.case_insensitive, true, i);
                        } else if letter_first && lit.len() >= 2 {
                            for v in case_variants(lit, spec.prefilter.case_insensitive) {
                                words.add_prefix(&v, i);
                            }
                            if spec.prefilter.glued {
                                let ci = spec.prefilter.case_insensitive;
                                add_pattern(&mut glued_lits, &mut glued_targets, lit, ci, i);
                            }
                        } else {
                            add_literal(
                                lit,
                                spec.prefilter.case_insensitive,
                                LitTarget {
                                    rule: i,
                                    word: spec.prefilter.word,
                                },
                            );
                        }
                    }
                }
                Anchor::Digits => {
                    digit_rules.push(engine::DigitGate::new(i, &spec.prefilter));
                }
                Anchor::Context => {
                    context_rules.push(i);
                    for w in &spec.context.words {
                        if w.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) {
                            words.add(w, true, true, i);
                        } else {
                            add_literal(
                                w,
                                true,
                                LitTarget {
                                    rule: i,
                                    word: true,
                                },
                            );
                        }
                    }
                }
            }
        }
        // Leftmost-longest reports "sk-ant-" but not the "sk-" inside it, so a
        // pattern also carries the targets of every pattern that prefixes it.
        let own = lit_targets.clone();
        for (i, p) in patterns.iter().enumerate() {
            for (j, q) in patterns.iter().enumerate() {
                if i != j && p.starts_with(q.as_str()) {
                    lit_targets[i].extend(own[j].iter().cloned());
                }
            }
        }
        // One-byte anchors (`@`) would make every occurrence of that byte a
        // candidate for the automaton's prefilter; memchr finds up to three
        // of them far faster on its own.
        let mut single_bytes: Vec<(u8, Vec<LitTarget>)> = Vec::new();
        let all = std::mem::take(&mut patterns);
        for (p, t) in all.iter().zip(std::mem::take(&mut lit_targets)) {
            let b = p.as_bytes()[0];
            let alone = p.len() == 1 && !all.iter().any(|q| q.len() > 1 && q.as_bytes()[0] == b);
            if alone && single_bytes.len() < 3 {
                single_bytes.push((b, t));
            } else {
                patterns.push(p.clone());
                lit_targets.push(t);
            }
        }
        digit_rules.sort_by_key(|g| g.min_digits);
        let literals = if patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(&patterns)
                    .map_err(|e| Error::new(ErrorKind::Pack, format!("literal prefilter: {e}")))?,
            )
        };
        // A separate automaton: its literals are long and rare inside words,
        // while the main one has short anchors (`://`) that make its
        // prefilter look at two-byte fingerprints.
        let glued = if glued_lits.is_empty() {
            None
        } else {
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .kind(Some(AhoCorasickKind::DFA))
                .start_kind(aho_corasick::StartKind::Both)
                .build(&glued_lits)
                .map_err(|e| Error::new(ErrorKind::Pack, format!("glued literals: {e}")))?;
            Some((ac, glued_targets))
        };
        Ok(Scanner {
            inner: Arc::new(Inner {
                rules,
                literals,
                glued,
                lit_targets,
                single_bytes,
                words,
                digit_rules,
                suffix_bloom: suffixes.iter().fold(
                    [0u64; 4],
                    |mut bloom, (lit, _): &(Box<[u8]>, usize)| {
                        if let Some(k) = lit.len().checked_sub(3).map(|k| suffix_bit(&lit[k..])) {
                            bloom[k / 64] |= 1 << (k % 64);
                        }
                        bloom
                    },
                ),
                suffixes,
                context_rules,
                allow,
                deny,
                config,
                packs,
            }),
        })
    }
}

/// Adds `target` to every case variant of `lit` in `patterns` (each
/// pattern once, `targets` parallel to it).
fn add_pattern<T: Clone>(
    patterns: &mut Vec<String>,
    targets: &mut Vec<Vec<T>>,
    lit: &str,
    ci: bool,
    target: T,
) {
    for v in case_variants(lit, ci) {
        match patterns.iter().position(|p| *p == v) {
            Some(i) => targets[i].push(target.clone()),
            None => {
                patterns.push(v);
                targets.push(vec![target.clone()]);
            }
        }
    }
}

/// `lit` as written, plus lower, Title and UPPER case when `ci`.
fn case_variants(lit: &str, ci: bool) -> Vec<String> {
    let mut variants = vec![lit.to_string()];
    if ci {
        let lower = lit.to_ascii_lowercase();
        let mut title = lower.clone();
        if let Some(f) = title.get_mut(..1) {
            f.make_ascii_uppercase();
        }
        variants.extend([lower, title, lit.to_ascii_uppercase()]);
    }
    variants.sort();
    variants.dedup();
    variants
}

/// The specs of the rules that survive `disabled_*`, in compile order.
fn active_specs<'a>(
    packs: &'a [Pack],
    config: &'a ScanConfig,
) -> impl Iterator<Item = &'a RuleSpec> + 'a {
    packs.iter().flat_map(|p| p.rules()).filter(|s| {
        !config.disabled_rules.contains(&s.id) && !config.disabled_entities.contains(&s.entity)
    })
}

fn compile_rule(p: &Pack, spec: &RuleSpec) -> Result<Rule, Error> {
    let at = |kind: ErrorKind, reason: String| {
        Error::new(kind, reason)
            .with_file(p.origin())
            .with_line(spec.line)
            .with_rule(spec.id.clone())
    };
    let re =
        compile_regex(&spec.regex, spec.case_insensitive).map_err(|r| at(ErrorKind::Regex, r))?;
    if spec.group >= re.group_info().group_len(regex_automata::PatternID::ZERO) {
        return Err(at(
            ErrorKind::Pack,
            format!("group {} does not exist in the regex", spec.group),
        ));
    }
    let validator = match &spec.validator {
        Some(name) => {
            let f = validate::by_name(name)
                .ok_or_else(|| at(ErrorKind::Pack, format!("unknown validator {name:?}")))?;
            Some((Arc::from(name.as_str()), f))
        }
        None => None,
    };
    let pf = &spec.prefilter;
    if let Some(d) = &pf.digits {
        let problem = if d.max != 0 && d.max < d.min {
            Some(format!("max {} is below min {}", d.max, d.min))
        } else if d.letters_before > 8 || d.letters_after > 2 {
            Some("letters_before is at most 8 and letters_after at most 2".to_string())
        } else if let Some(c) = d.separators.as_deref().and_then(|s| {
            s.chars()
                .find(|&c| !c.is_ascii() || engine::RUN_SEP[c as usize] == 0)
        }) {
            Some(format!(
                "separators: {c:?} never joins a digit run (they are \" -./()+:\")"
            ))
        } else if d.letters_touch && d.letters_before + d.letters_after == 0 {
            Some("letters_touch needs letters_before or letters_after".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(at(ErrorKind::Pack, format!("prefilter digits: {p}")));
        }
    }
    let anchor = if pf.context {
        Anchor::Context
    } else if pf.digits.is_some() {
        Anchor::Digits
    } else {
        Anchor::Literal
    };
    let next = match &pf.next {
        Some(_) if anchor != Anchor::Literal => {
            return Err(at(
                ErrorKind::Pack,
                "prefilter next needs literals (it follows a literal anchor)".into(),
            ))
        }
        Some(class) => Some(byte_class(class).map_err(|e| at(ErrorKind::Pack, e))?),
        None => None,
    };
    let ctx = if spec.context.words.is_empty() && spec.context.negative.is_empty() {
        None
    } else {
        let c = &spec.context;
        let mut words: Vec<(Arc<str>, f32)> = c
            .words
            .iter()
            .map(|w| (Arc::from(w.as_str()), c.boost))
            .collect();
        words.extend(
            c.negative
                .iter()
                .map(|w| (Arc::from(w.as_str()), -c.penalty)),
        );
        let keyable = |w: &str| w.as_bytes().first().is_some_and(u8::is_ascii_alphabetic);
        let mut dict = WordDict::default();
        for (i, (w, _)) in words.iter().enumerate() {
            if keyable(w) {
                dict.add(w, true, true, i);
            }
        }
        let (rest_ids, rest_pats): (Vec<usize>, Vec<&str>) = words
            .iter()
            .enumerate()
            .filter(|(_, (w, _))| !keyable(w))
            .map(|(i, (w, _))| (i, &**w))
            .unzip();
        let rest = if rest_pats.is_empty() {
            None
        } else {
            let ac = AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .kind(Some(AhoCorasickKind::DFA))
                .build(&rest_pats)
                .map_err(|e| at(ErrorKind::Pack, format!("context words: {e}")))?;
            Some((ac, rest_ids))
        };
        Some(ContextMatcher {
            dict,
            rest,
            lower: c.words.iter().map(|w| w.to_ascii_lowercase()).collect(),
            words,
            before: c.before,
            after: c.after,
        })
    };
    if spec.context.required && spec.context.words.is_empty() {
        return Err(at(
            ErrorKind::Pack,
            "context.required needs context.words".into(),
        ));
    }
    let mut exclude = AllowList::default();
    for e in p
        .exclusions()
        .iter()
        .filter(|e| e.entity.as_ref().is_none_or(|x| *x == spec.entity))
    {
        exclude.add(e, p.origin(), Some(&spec.id))?;
    }
    for e in &spec.exclude {
        exclude.add(e, p.origin(), Some(&spec.id))?;
    }
    Ok(Rule {
        id: Arc::from(spec.id.as_str()),
        entity: Arc::from(spec.entity.as_str()),
        dfa: if anchor != Anchor::Context && pf.before == 0 {
            compile_anchored_dfa(&spec.regex, spec.case_insensitive)
                .map(|d| Dfa::Anchored(Box::new(d)))
        } else {
            compile_dfa(&spec.regex, spec.case_insensitive).map(|d| Dfa::Window(Box::new(d)))
        },
        re,
        group: spec.group,
        validator,
        score: spec.score,
        anchor,
        before: pf.before,
        after: pf.after,
        ctx,
        required: spec.context.required,
        exclude,
        glued: pf.glued,
        next,
    })
}

/// The bit of [`Inner::suffix_bloom`] for a word ending in the three bytes
/// `tail`.
#[inline]
fn suffix_bit(tail: &[u8]) -> usize {
    let key = tail.iter().fold(0u32, |k, &b| k << 8 | u32::from(b));
    (key.wrapping_mul(0x9E37_79B1) >> 24) as usize
}

/// The bytes a one-byte regex class such as `[A-Z:,\n]` matches.
fn byte_class(class: &str) -> Result<ByteSet, String> {
    let re = compile_regex(&format!("^(?:{class})$"), false)
        .map_err(|e| format!("prefilter next {class:?}: {e}"))?;
    let mut set = ByteSet::default();
    for b in 0..=255u8 {
        if re.is_match([b].as_slice()) {
            set.bits[usize::from(b >> 6)] |= 1 << (b & 63);
        }
    }
    if set.bits == [0; 4] {
        return Err(format!("prefilter next {class:?} matches no single byte"));
    }
    Ok(set)
}
