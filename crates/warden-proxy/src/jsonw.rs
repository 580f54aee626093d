//! Compact JSON output for the bodies Warden forwards, byte-for-byte what
//! `serde_json::to_vec` writes, but with string escaping that skips clean runs
//! eight bytes at a time. A forwarded body is mostly prompt text, and
//! `serde_json` checks it one byte at a time; this is the hot half of the
//! re-serialisation on every request and response.

use serde_json::Value;

/// Serialise `v` as compact JSON (as `serde_json::to_vec` does) into a vector
/// with room for `capacity` bytes.
pub fn to_vec(v: &Value, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // Numbers are rare and short: serde_json's own formatting keeps them identical.
        Value::Number(n) => {
            if serde_json::to_writer(&mut *out, n).is_err() {
                // Writing to a Vec cannot fail; serde_json writes `null` for what it cannot print.
                out.extend_from_slice(b"null");
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, x);
            }
            out.push(b']');
        }
        Value::Object(o) => {
            out.push(b'{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_value(out, x);
            }
            out.push(b'}');
        }
    }
}

/// A quoted, escaped JSON string: `"` and `\` backslash-escaped, `\b \t \n \f \r`
/// by name, other control bytes as `\u00xx` (lower-case hex), everything else
/// (including non-ASCII and DEL) as is — serde_json's rules.
fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(j) = find_escape(&b[start..]) {
        let i = start + j;
        out.extend_from_slice(&b[start..i]);
        let c = b[i];
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\x0c' => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(c >> 4)]);
                out.push(HEX[usize::from(c & 0xf)]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// Index of the first byte that must be escaped (`< 0x20`, `"` or `\`), eight
/// bytes at a time. The SWAR tests can flag bytes after a true hit (borrows),
/// never before it, so the lowest flagged byte is exact.
pub(crate) fn find_escape(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let below = |v: u64, n: u8| v.wrapping_sub(LO * u64::from(n)) & !v & HI;
    let mut chunks = s.chunks_exact(8);
    let mut base = 0;
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let hit = below(w, 0x20)
            | below(w ^ (LO * u64::from(b'"')), 1)
            | below(w ^ (LO * u64::from(b'\\')), 1);
        if hit != 0 {
            return Some(base + (hit.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c < 0x20 || c == b'"' || c == b'\\')
        .map(|j| base + j)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn same(v: &Value) {
        let ours = to_vec(v, 0);
        let theirs = serde_json::to_vec(v).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }

    #[test]
    fn every_byte_in_every_position_escapes_like_serde_json() {
        // Each ASCII byte (and a multi-byte character) at each offset around the
        // 8-byte chunks, alone and next to another escape.
        let mut specials: Vec<String> = (0u8..0x80).map(|c| char::from(c).to_string()).collect();
        specials.extend(["é".to_string(), "😀".to_string(), "\u{2028}".to_string()]);
        for sp in &specials {
            for pad in 0..18 {
                let a = "a".repeat(pad);
                same(&Value::String(format!("{a}{sp}")));
                same(&Value::String(format!("{a}{sp}{a}\"")));
                same(&Value::String(format!("{sp}{a}{sp}\n{a}")));
            }
        }
    }

    #[test]
    fn values_match_serde_json() {
        same(&json!(null));
        same(&json!({}));
        same(&json!([]));
        same(
            &json!({"model": "gpt-4o", "stream": false, "temperature": 0.7, "n": 1,
            "neg": -12, "big": u64::MAX, "small": i64::MIN, "exp": 1e300, "tiny": 5e-324,
            "f": 0.1, "whole": 3.0, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "line\nbreak \"q\" \\ tab\t ctl\u{1} del\u{7f} ünï 😀"}]}],
            "k\"ey\n": {"nested": [[], {}, [null, true, false]]}}),
        );
    }
}
