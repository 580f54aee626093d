//! Restoring originals in text that arrives in pieces (LLM streams).

use std::sync::Arc;

use super::vault::{is_placeholder_prefix, Vault};

/// Restores placeholder tokens in a stream of chunks.
///
/// Each [`feed`](StreamRestorer::feed) returns the text that can be released
/// now, with every complete token restored. A chunk that ends in what may be
/// the start of a token (`<EMA`) has that tail held back until the next chunk
/// decides it; [`feed_bytes`](StreamRestorer::feed_bytes) also holds back an
/// incomplete UTF-8 character. At most [`MAX_TOKEN_LEN`](crate::redact::MAX_TOKEN_LEN)
/// bytes of text plus 3 bytes are ever held, whatever the stream's length.
///
/// The concatenation of everything returned (including [`finish`](StreamRestorer::finish))
/// equals [`Vault::restore`] of the whole stream, for every way of cutting it
/// into chunks.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use warden_core::{StreamRestorer, Vault};
/// let mut vault = Vault::new();
/// vault.placeholder("EMAIL", "jane@example.org");
/// let mut r = StreamRestorer::new(Arc::new(vault));
/// let mut out = String::new();
/// for chunk in ["Write to <EM", "AIL_", "1> today"] {
///     out += &r.feed(chunk);
/// }
/// out += &r.finish();
/// assert_eq!(out, "Write to jane@example.org today");
/// ```
#[derive(Debug)]
pub struct StreamRestorer {
    vault: Arc<Vault>,
    json: bool,
    /// Text held back because it may start a token.
    held: String,
    /// Bytes of an incomplete UTF-8 character (at most 3).
    partial: Vec<u8>,
}

impl StreamRestorer {
    /// A restorer for plain text.
    pub fn new(vault: Arc<Vault>) -> StreamRestorer {
        StreamRestorer {
            vault,
            json: false,
            held: String::new(),
            partial: Vec::new(),
        }
    }

    /// Switches to JSON-string mode, for streamed tool-call arguments: the
    /// stream is the inside of a JSON string (or a JSON document as text)
    /// and originals are escaped as in [`Vault::restore_json`].
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use warden_core::{StreamRestorer, Vault};
    /// let mut vault = Vault::new();
    /// vault.placeholder("PERSON", "O\"Neil");
    /// let mut r = StreamRestorer::new(Arc::new(vault)).json_escaped();
    /// let mut out = r.feed(r#"{"name":"<PERSON"#);
    /// out += &r.feed(r#"_1>"}"#);
    /// out += &r.finish();
    /// assert_eq!(out, r#"{"name":"O\"Neil"}"#);
    /// ```
    pub fn json_escaped(mut self) -> StreamRestorer {
        self.json = true;
        self
    }

    /// The vault this restorer reads.
    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    /// Feeds a chunk of text; returns what can be released now.
    ///
    /// If bytes of an incomplete character from [`feed_bytes`](StreamRestorer::feed_bytes)
    /// are pending, they cannot be completed by a `&str` and are released as
    /// U+FFFD first.
    pub fn feed(&mut self, chunk: &str) -> String {
        if !self.partial.is_empty() {
            self.partial.clear();
            self.held.push('\u{FFFD}');
        }
        self.held.push_str(chunk);
        self.release(false)
    }

    /// Feeds raw bytes (for example an HTTP body chunk); returns what can be
    /// released now. A character cut by the chunk edge is completed by the
    /// next chunk; invalid UTF-8 becomes U+FFFD, as in
    /// [`String::from_utf8_lossy`].
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use warden_core::{StreamRestorer, Vault};
    /// let mut r = StreamRestorer::new(Arc::new(Vault::new()));
    /// let euro = "€".as_bytes(); // 3 bytes
    /// assert_eq!(r.feed_bytes(&euro[..1]), "");
    /// assert_eq!(r.feed_bytes(&euro[1..]), "€");
    /// ```
    pub fn feed_bytes(&mut self, chunk: &[u8]) -> String {
        if self.partial.is_empty() {
            self.decode(chunk);
        } else {
            // At most 3 pending bytes: joining costs one copy of the chunk,
            // and decoding the joined bytes is exactly what decoding the
            // whole stream would do at this position.
            let mut joined = std::mem::take(&mut self.partial);
            joined.extend_from_slice(chunk);
            self.decode(&joined);
        }
        self.release(false)
    }

    /// Appends `bytes` to `held` with [`String::from_utf8_lossy`]'s rules,
    /// except that an incomplete character at the very end goes to
    /// `partial`, to be completed by the next chunk.
    fn decode(&mut self, mut bytes: &[u8]) {
        loop {
            match std::str::from_utf8(bytes) {
                Ok(s) => {
                    self.held.push_str(s);
                    return;
                }
                Err(e) => {
                    let (valid, after) = bytes.split_at(e.valid_up_to());
                    // Checked valid by the from_utf8 call above.
                    if let Ok(s) = std::str::from_utf8(valid) {
                        self.held.push_str(s);
                    }
                    match e.error_len() {
                        Some(n) => {
                            self.held.push('\u{FFFD}');
                            bytes = &after[n..];
                        }
                        None => {
                            self.partial.extend_from_slice(after);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Releases everything except a possible token start at the end.
    fn release(&mut self, all: bool) -> String {
        let keep_from = if all {
            self.held.len()
        } else {
            match self.held.rfind('<') {
                Some(lt)
                    if is_placeholder_prefix(&self.held[lt..]) && !self.held.ends_with('>') =>
                {
                    lt
                }
                _ => self.held.len(),
            }
        };
        let mut out = String::with_capacity(keep_from + 16);
        self.vault
            .restore_into(&self.held[..keep_from], self.json, &mut out);
        self.held.drain(..keep_from);
        out
    }

    /// Ends the stream: releases everything held back (an incomplete UTF-8
    /// character becomes U+FFFD).
    pub fn finish(mut self) -> String {
        if !self.partial.is_empty() {
            self.partial.clear();
            self.held.push('\u{FFFD}');
        }
        self.release(true)
    }
}
