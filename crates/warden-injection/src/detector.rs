//! The detector: views, rules and the learned tier combined into one score.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::canon::{self, Input, Signals, View};
use crate::decode;
use crate::error::Error;
use crate::examples;
use crate::learned::{Classifier, LinearModel};
use crate::rules::{top_input, Hit, RulePack, RuleSet};

/// Where a text comes from; untrusted sources get stricter thresholds and
/// the document-only rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A user turn.
    User,
    /// A system or developer prompt.
    System,
    /// A tool or function result.
    Tool,
    /// Retrieved or uploaded document content.
    Document,
}

impl FromStr for Source {
    type Err = Error;
    fn from_str(s: &str) -> Result<Source, Error> {
        match s.to_ascii_lowercase().as_str() {
            "user" => Ok(Source::User),
            "system" | "developer" => Ok(Source::System),
            "tool" | "function" => Ok(Source::Tool),
            "document" | "retrieval" | "context" => Ok(Source::Document),
            _ => Err(Error::config(format!(
                "unknown source {s:?} (expected user, system, tool or document)"
            ))),
        }
    }
}

/// The decision for one text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Below the flag threshold.
    Allow,
    /// At or above the flag threshold: pass on, but mark.
    Flag,
    /// At or above the block threshold.
    Block,
}

/// Score thresholds for one source.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Score at or above which the verdict is `flag`.
    pub flag: f32,
    /// Score at or above which the verdict is `block`.
    pub block: f32,
}

/// Detector settings; every field has a default, so `{}` is a valid config.
///
/// # Example
/// ```
/// let cfg: warden_injection::DetectorConfig =
///     serde_json::from_str(r#"{"document": {"flag": 0.3, "block": 0.6}}"#).unwrap();
/// assert_eq!(cfg.document.block, 0.6);
/// assert!(cfg.learned);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Thresholds for user turns.
    pub user: Thresholds,
    /// Thresholds for system prompts (trusted, so laxer).
    pub system: Thresholds,
    /// Thresholds for tool results (untrusted).
    pub tool: Thresholds,
    /// Thresholds for documents (untrusted).
    pub document: Thresholds,
    /// Rule ids to switch off.
    pub disabled_rules: Vec<String>,
    /// Use the learned tier.
    pub learned: bool,
    /// Scale of the learned tier's probability in the combined score: the
    /// model alone can flag a text but, below 1.0, never reach certainty
    /// without a rule agreeing.
    pub model_weight: f32,
    /// Maximum nesting of decode layers (at most 3).
    pub max_depth: u8,
    /// Maximum total bytes of decoded payloads per check.
    pub decode_budget: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            user: Thresholds {
                flag: 0.5,
                block: 0.8,
            },
            system: Thresholds {
                flag: 0.9,
                block: 0.98,
            },
            tool: Thresholds {
                flag: 0.35,
                block: 0.65,
            },
            document: Thresholds {
                flag: 0.35,
                block: 0.65,
            },
            disabled_rules: Vec::new(),
            learned: true,
            model_weight: 0.75,
            max_depth: 3,
            decode_budget: 1 << 18,
        }
    }
}

impl DetectorConfig {
    /// Thresholds for `source`.
    pub fn thresholds(&self, source: Source) -> Thresholds {
        match source {
            Source::User => self.user,
            Source::System => self.system,
            Source::Tool => self.tool,
            Source::Document => self.document,
        }
    }
}

/// One piece of evidence: what fired, in which layer, where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InjectionEvidence {
    /// Rule id (`override.en`, `obfuscation.tag_chars`, `learned.linear`, ...).
    pub rule: Arc<str>,
    /// Layer the hit was found in: `plain`, `folded`, `tag_chars`,
    /// `variation_selectors`, `base64`, `base32`, `hex`, `percent`,
    /// `html_entities`, `rot13` (nested layers joined with `/`).
    pub layer: Arc<str>,
    /// Start byte offset in the original text.
    pub start: usize,
    /// End byte offset (exclusive) in the original text.
    pub end: usize,
    /// Contribution to the score.
    pub weight: f32,
}

/// The detector's answer for one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InjectionResult {
    /// Combined score in [0, 1].
    pub score: f32,
    /// Decision from the source's thresholds.
    pub verdict: Verdict,
    /// Evidence sorted by start offset.
    pub evidence: Vec<InjectionEvidence>,
}

/// The compiled injection detector: cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Detector {
    rules: Arc<RuleSet>,
    classifier: Option<Arc<dyn Classifier>>,
    config: Arc<DetectorConfig>,
    disabled: Arc<Vec<bool>>,
    layer_names: Arc<HashMap<String, Arc<str>>>,
}

const MODEL_BYTES: &[u8] = include_bytes!("../../../patterns/injection/model.bin");

impl Detector {
    /// The default rules and model, compiled into the binary.
    ///
    /// # Errors
    /// Only if the embedded data is corrupt (a build defect).
    pub fn builtin() -> Result<Detector, Error> {
        let model = LinearModel::from_bytes(MODEL_BYTES)?;
        Detector::new(&examples::builtin_packs()?, Some(Arc::new(model)))
    }

    /// Loads `*.toml` rules and, if present, `model.bin` from `dir`.
    ///
    /// # Errors
    /// Returns the file and rule concerned for unreadable or invalid files.
    pub fn from_dir(dir: &Path) -> Result<Detector, Error> {
        let packs = examples::load_dir(dir)?;
        let model_path = dir.join("model.bin");
        let model = if model_path.exists() {
            let bytes = std::fs::read(&model_path)
                .map_err(|e| Error::io(&model_path.display().to_string(), e.to_string()))?;
            Some(Arc::new(LinearModel::from_bytes(&bytes)?) as Arc<dyn Classifier>)
        } else {
            None
        };
        Detector::new(&packs, model)
    }

    /// Builds a detector from rule packs and an optional classifier.
    ///
    /// # Errors
    /// Returns an error naming the rule that does not compile.
    pub fn new(
        packs: &[RulePack],
        classifier: Option<Arc<dyn Classifier>>,
    ) -> Result<Detector, Error> {
        let rules = RuleSet::compile(packs)?;
        let disabled = vec![false; rules.rules.len()];
        Ok(Detector {
            rules: Arc::new(rules),
            classifier,
            config: Arc::new(DetectorConfig::default()),
            disabled: Arc::new(disabled),
            layer_names: Arc::new(HashMap::new()),
        })
    }

    /// Replaces the configuration.
    pub fn with_config(mut self, cfg: DetectorConfig) -> Detector {
        let disabled = self
            .rules
            .rules
            .iter()
            .map(|r| cfg.disabled_rules.iter().any(|d| d == &*r.id))
            .collect();
        self.disabled = Arc::new(disabled);
        self.config = Arc::new(cfg);
        self
    }

    /// Replaces the learned tier (e.g. a model-based classifier), or removes it.
    pub fn with_classifier(mut self, classifier: Option<Arc<dyn Classifier>>) -> Detector {
        self.classifier = classifier;
        self
    }

    /// The active configuration.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Number of compiled rules.
    pub fn rule_count(&self) -> usize {
        self.rules.rules.len()
    }

    /// Scores `text` as coming from `source`.
    pub fn check(&self, text: &str, source: Source) -> InjectionResult {
        let analysis = self.analyse(text, source);
        let mut evidence = analysis.evidence;
        // Noisy-OR over the strongest hit of each distinct rule, multiplied
        // in rule-id order: a fixed order keeps the float product, and so
        // the score, the same from run to run.
        let mut best: Vec<(&str, f32)> = evidence.iter().map(|e| (&*e.rule, e.weight)).collect();
        best.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut rule_keep = 1.0f32;
        for group in best.chunk_by(|a, b| a.0 == b.0) {
            let w = group.iter().fold(0.0f32, |w, g| w.max(g.1));
            rule_keep *= 1.0 - w.clamp(0.0, 1.0);
        }
        let score = (1.0 - rule_keep).clamp(0.0, 1.0);
        let t = self.config.thresholds(source);
        let verdict = if score >= t.block {
            Verdict::Block
        } else if score >= t.flag {
            Verdict::Flag
        } else {
            Verdict::Allow
        };
        evidence.sort_by(|a, b| a.start.cmp(&b.start).then(a.rule.cmp(&b.rule)));
        evidence.truncate(64);
        InjectionResult {
            score,
            verdict,
            evidence,
        }
    }

    fn layer_name(&self, path: &str) -> Arc<str> {
        self.layer_names
            .get(path)
            .cloned()
            .unwrap_or_else(|| Arc::from(path))
    }

    fn analyse(&self, text: &str, source: Source) -> Analysis {
        let mut views: Vec<(View, String)> = Vec::new();
        let mut signals: Vec<(Signals, String)> = Vec::new();
        let mut payload_spans: Vec<(String, usize, usize, &'static str)> = Vec::new();
        let mut budget = self.config.decode_budget;
        let max_depth = self.config.max_depth.min(3);
        let mut queue: Vec<(Input, String)> = vec![(top_input(text), "plain".to_string())];
        let mut has_encoded = false;
        while let Some((input, path)) = queue.pop() {
            let c = canon::canonicalize(&input);
            let mut payloads = c.payloads;
            if input.depth < max_depth && budget > 0 {
                let found = decode::find_payloads(&input, &mut budget);
                has_encoded |= !found.is_empty();
                payloads.extend(found);
            }
            for p in payloads {
                let (s, e) = p.map.span(0, p.text.len().max(1));
                payload_spans.push((path.clone(), s, e, p.layer));
                if p.depth <= max_depth && p.text.len() <= budget.max(p.text.len()) {
                    let child = if path == "plain" {
                        p.layer.to_string()
                    } else {
                        format!("{path}/{}", p.layer)
                    };
                    queue.push((p, child));
                }
            }
            signals.push((c.signals, path.clone()));
            // An `I` inside a word may be an `l` ("aIl"): only the plain layer
            // maps back byte for byte to where it was written.
            let capital_i = if path == "plain" {
                canon::capital_i_positions(&c.view, text)
            } else {
                Vec::new()
            };
            let leet = c.wants_fold || !capital_i.is_empty();
            if c.fold_always || leet && self.rules.leet_matters(&c.view.text, &capital_i) {
                let f = canon::fold_view(&c.view);
                views.push((f, path.clone()));
            }
            if let Some(j) = canon::join_view(&c.view, text, Some(self.rules.glue())) {
                views.push((j, path.clone()));
            }
            views.push((c.view, path));
            if views.len() > 64 {
                break;
            }
        }

        let mut evidence = Vec::new();
        let mut hits: Vec<Hit> = Vec::new();
        for (view, path) in &views {
            hits.clear();
            let original = (path == "plain" && !view.folded && !view.joined).then_some(text);
            self.rules
                .match_view(view, original, source, has_encoded, &mut hits);
            let layer = if view.folded {
                self.layer_name(&format!("{path}+folded"))
            } else if view.joined {
                self.layer_name(&format!("{path}+joined"))
            } else {
                self.layer_name(path)
            };
            for h in hits.iter() {
                if self.disabled.get(h.rule as usize).copied().unwrap_or(true) {
                    continue;
                }
                if view.joined && !view.joins_inside(h.start, h.end) {
                    continue;
                }
                let Some(rule) = self.rules.rules.get(h.rule as usize) else {
                    continue;
                };
                let hidden = path.contains("tag_chars") || path.contains("variation_selectors");
                let weight = if hidden {
                    rule.spec.weight.max(0.95)
                } else {
                    rule.spec.weight
                };
                evidence.push(InjectionEvidence {
                    rule: rule.id.clone(),
                    layer: layer.clone(),
                    start: h.start,
                    end: h.end,
                    weight,
                });
                let _ = h.layer;
            }
        }

        // Obfuscation signals.
        for (sig, path) in &signals {
            let layer = self.layer_name(path);
            let mut note = |rule: &str, spans: &[(usize, usize)], w: f32| {
                if let Some(&(s, e)) = spans.first() {
                    evidence.push(InjectionEvidence {
                        rule: Arc::from(rule),
                        layer: layer.clone(),
                        start: s,
                        end: spans.iter().map(|x| x.1).max().unwrap_or(e),
                        weight: w,
                    });
                }
            };
            note("obfuscation.zero_width", &sig.zero_width, 0.3);
            note("obfuscation.bidi_override", &sig.bidi, 0.3);
            note("obfuscation.mixed_script", &sig.mixed_script, 0.25);
        }
        for (parent, s, e, layer) in &payload_spans {
            let (rule, w) = match *layer {
                "tag_chars" => ("obfuscation.tag_chars", 0.6),
                "variation_selectors" => ("obfuscation.variation_selectors", 0.6),
                _ => ("encoded.payload", 0.05),
            };
            let name = if parent == "plain" {
                layer.to_string()
            } else {
                format!("{parent}/{layer}")
            };
            evidence.push(InjectionEvidence {
                rule: Arc::from(rule),
                layer: self.layer_name(&name),
                start: *s,
                end: (*e).max(*s),
                weight: w,
            });
        }

        // Learned tier on every canonical (unfolded) view.
        if self.config.learned {
            if let Some(clf) = &self.classifier {
                let mut best: Option<(f32, &View, &str)> = None;
                for (view, path) in views.iter().filter(|(v, _)| !v.folded && !v.joined) {
                    let p = clf.score(&view.text);
                    if best.is_none_or(|b| p > b.0) {
                        best = Some((p, view, path));
                    }
                }
                if let Some((p, view, path)) = best {
                    let (s, e) = if view.text.is_empty() {
                        (0, 0)
                    } else {
                        view.original(0, view.text.len())
                    };
                    evidence.push(InjectionEvidence {
                        rule: Arc::from(format!("learned.{}", clf.name())),
                        layer: self.layer_name(path),
                        start: s,
                        end: e,
                        weight: (p * self.config.model_weight).clamp(0.0, 1.0),
                    });
                }
            }
        }
        Analysis { evidence }
    }
}

struct Analysis {
    evidence: Vec<InjectionEvidence>,
}

/// The canonical view the rules and the learned tier see (for training and
/// debugging): NFKC-style folding, lower case, diacritics and invisible
/// characters removed, whitespace collapsed.
///
/// # Example
/// ```
/// assert_eq!(warden_injection::canonical("ＩＧ\u{200B}NORÉ  this"), "ignore this");
/// ```
pub fn canonical(text: &str) -> String {
    canon::canonicalize(&top_input(text)).view.text
}
