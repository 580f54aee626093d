//! Reading request bodies on our terms: a size cap and a JSON depth cap checked
//! before parsing, with errors in the vendor's shape (not the framework's text).

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::error::ProxyError;

/// Read at most `max` bytes of a body.
///
/// # Errors
/// [`ProxyError::TooLarge`] past the cap, [`ProxyError::BadRequest`] on a read error.
pub async fn read_body(body: Body, max: usize) -> Result<Bytes, ProxyError> {
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ProxyError::TooLarge(max))
        }
        Err(_) => Err(ProxyError::BadRequest(
            "could not read the request body".into(),
        )),
    }
}

/// Nesting depth of a JSON text, counted without parsing it (strings are skipped).
///
/// Runs on every request body before the parse, so string contents (nearly all
/// of a prompt) are skipped with memchr to the next `"` or `\`.
pub fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip the string: jump to each `"` or `\`, stepping over escapes.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &bytes[i.min(bytes.len())..]) {
                        None => return max,
                        Some(j) if bytes[i + j] == b'\\' => i += j + 2,
                        Some(j) => {
                            i += j + 1;
                            break;
                        }
                    }
                }
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    max
}

/// Parse a JSON object body after checking its depth.
///
/// # Errors
/// [`ProxyError::BadRequest`] for too deep, malformed or non-object bodies
/// (the message never quotes the body).
pub fn parse_json(bytes: &[u8], max_depth: usize) -> Result<Value, ProxyError> {
    if json_depth(bytes) > max_depth {
        return Err(ProxyError::BadRequest(format!(
            "JSON nesting deeper than {max_depth}"
        )));
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        ProxyError::BadRequest(format!(
            "malformed JSON body at line {} column {}",
            e.line(),
            e.column()
        ))
    })?;
    if !v.is_object() {
        return Err(ProxyError::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time definition the fast version must agree with.
    fn json_depth_slow(bytes: &[u8]) -> usize {
        let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
        for &b in bytes {
            if in_str {
                if esc {
                    esc = false;
                } else if b == b'\\' {
                    esc = true;
                } else if b == b'"' {
                    in_str = false;
                }
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'{' | b'[' => {
                    depth += 1;
                    max = max.max(depth);
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        max
    }

    #[test]
    fn fast_depth_matches_the_byte_loop() {
        // Every string of up to six bytes over the JSON-significant bytes (and a
        // filler), including unterminated strings and trailing backslashes.
        let alphabet = b"\"\\{}[]a";
        let mut cases: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..6 {
            let mut next = Vec::new();
            for c in &cases {
                for &b in alphabet {
                    let mut c = c.clone();
                    c.push(b);
                    next.push(c);
                }
            }
            cases = next;
            for c in &cases {
                assert_eq!(
                    json_depth(c),
                    json_depth_slow(c),
                    "{:?}",
                    String::from_utf8_lossy(c)
                );
            }
        }
        // Longer texts: quotes and escapes at every offset around the 8-byte chunks.
        for pad in 0..20 {
            for tail in [&b"\\\"]\"}"[..], b"\\\\\"[[", b"\"{", b"\\", b"]]"] {
                let mut t = b"{\"k\":[\"".to_vec();
                t.extend(std::iter::repeat_n(b'x', pad));
                t.extend_from_slice(tail);
                t.extend(std::iter::repeat_n(b'y', pad));
                t.extend_from_slice(b"\",[{}]]}");
                assert_eq!(
                    json_depth(&t),
                    json_depth_slow(&t),
                    "{:?}",
                    String::from_utf8_lossy(&t)
                );
            }
        }
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(json_depth(br#"{"a":"[[[{{{\"]]]","b":[1,[2]]}"#), 3);
        assert!(parse_json(&[b'['; 100], 64).is_err());
        assert!(parse_json(b"[1]", 64).is_err());
    }
}
