//! Allow lists, deny lists and exclusions, compiled.

use std::collections::HashSet;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use regex_automata::meta;

use super::compile_regex;
use crate::config::ListEntry;
use crate::error::{Error, ErrorKind};

/// An exact list value, optionally limited to one entity.
type ExactKey = (Option<Arc<str>>, Box<[u8]>);

/// Values that must not be reported: exact (optionally per entity) or regex.
#[derive(Debug, Default)]
pub(crate) struct AllowList {
    exact: HashSet<ExactKey>,
    regexes: Vec<(Option<Arc<str>>, meta::Regex)>,
}

impl AllowList {
    pub(crate) fn add(
        &mut self,
        e: &ListEntry,
        origin: &str,
        rule: Option<&str>,
    ) -> Result<(), Error> {
        let entity = e.entity.as_deref().map(Arc::from);
        let fail = |reason: &str| {
            let mut err = Error::new(ErrorKind::Config, reason).with_file(origin);
            if let Some(r) = rule {
                err = err.with_rule(r);
            }
            err
        };
        match (&e.value, &e.regex) {
            (Some(v), None) => {
                self.exact.insert((entity, v.as_bytes().into()));
            }
            (None, Some(r)) => {
                let re = compile_regex(r, false)
                    .map_err(|reason| fail(&format!("bad regex in list entry: {reason}")))?;
                self.regexes.push((entity, re));
            }
            _ => return Err(fail("a list entry sets exactly one of `value` and `regex`")),
        }
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.regexes.is_empty()
    }

    pub(crate) fn contains(&self, entity: &Arc<str>, value: &[u8]) -> bool {
        if self.is_empty() {
            return false;
        }
        let hit_exact = !self.exact.is_empty()
            && (self.exact.contains(&(None, value.into()))
                || self.exact.contains(&(Some(entity.clone()), value.into())));
        hit_exact
            || self
                .regexes
                .iter()
                .any(|(e, re)| e.as_ref().is_none_or(|e| e == entity) && re.is_match(value))
    }
}

/// Values that are always reported.
#[derive(Debug)]
pub(crate) struct DenyList {
    exact: Option<(AhoCorasick, Vec<Arc<str>>)>,
    regexes: Vec<(Arc<str>, meta::Regex)>,
}

/// One deny-list hit: (entity, start, end) in the scanned view.
pub(crate) type DenyHit = (Arc<str>, usize, usize);

impl DenyList {
    pub(crate) fn build(entries: &[ListEntry]) -> Result<Option<DenyList>, Error> {
        if entries.is_empty() {
            return Ok(None);
        }
        let mut words = Vec::new();
        let mut word_entities = Vec::new();
        let mut regexes = Vec::new();
        for e in entries {
            let entity: Arc<str> = Arc::from(e.entity.as_deref().unwrap_or("DENY_LIST"));
            match (&e.value, &e.regex) {
                (Some(v), None) if !v.is_empty() => {
                    words.push(v.clone());
                    word_entities.push(entity);
                }
                (None, Some(r)) => {
                    let re = compile_regex(r, false).map_err(|reason| {
                        Error::new(ErrorKind::Config, format!("deny list: bad regex: {reason}"))
                            .with_file("config")
                    })?;
                    regexes.push((entity, re));
                }
                _ => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        "deny list: an entry sets exactly one non-empty `value` or `regex`",
                    )
                    .with_file("config"))
                }
            }
        }
        let exact = if words.is_empty() {
            None
        } else {
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&words)
                .map_err(|e| {
                    Error::new(ErrorKind::Config, format!("deny list: {e}")).with_file("config")
                })?;
            Some((ac, word_entities))
        };
        Ok(Some(DenyList { exact, regexes }))
    }

    pub(crate) fn find(&self, text: &[u8], out: &mut Vec<DenyHit>) {
        if let Some((ac, entities)) = &self.exact {
            for m in ac.find_iter(text) {
                out.push((entities[m.pattern().as_usize()].clone(), m.start(), m.end()));
            }
        }
        for (entity, re) in &self.regexes {
            for m in re.find_iter(text) {
                if m.start() < m.end() {
                    out.push((entity.clone(), m.start(), m.end()));
                }
            }
        }
    }
}
