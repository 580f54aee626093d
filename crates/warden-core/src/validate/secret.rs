//! Secrets: JSON Web Tokens, high-entropy strings.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::verdict;
use crate::finding::Checksum;

/// JWT: three base64url parts; the header decodes to a JSON object with an
/// `alg` string and the payload to a JSON object.
pub fn jwt(s: &[u8]) -> Checksum {
    let mut parts = s.split(|&b| b == b'.');
    let (Some(h), Some(p), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Checksum::Invalid;
    };
    let decode = |part: &[u8]| -> Option<Vec<u8>> {
        let trimmed = part
            .strip_suffix(b"==")
            .or_else(|| part.strip_suffix(b"="))
            .unwrap_or(part);
        URL_SAFE_NO_PAD.decode(trimmed).ok()
    };
    // Typed and ignored parses: validating must not build a JSON tree of a
    // possibly large payload.
    #[derive(serde::Deserialize)]
    struct Header<'a> {
        #[serde(borrow)]
        #[allow(dead_code)]
        alg: std::borrow::Cow<'a, str>,
    }
    // A struct also deserialises from a JSON array: require an object.
    let is_object = |raw: &[u8]| raw.trim_ascii_start().first() == Some(&b'{');
    let header_ok = decode(h)
        .is_some_and(|raw| is_object(&raw) && serde_json::from_slice::<Header<'_>>(&raw).is_ok());
    let payload_ok = header_ok
        && decode(p).is_some_and(|raw| {
            is_object(&raw) && serde_json::from_slice::<serde::de::IgnoredAny>(&raw).is_ok()
        });
    verdict(payload_ok)
}

/// Shannon entropy of `s` in bits per byte.
pub fn shannon_entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// A random-looking secret: at least 16 bytes, letters and digits mixed,
/// Shannon entropy ≥ 3.5 bits per byte (English words and identifiers score
/// lower; random base64/hex of this length scores higher).
pub fn entropy(s: &[u8]) -> Checksum {
    let has_digit = s.iter().any(|b| b.is_ascii_digit());
    let has_alpha = s.iter().any(|b| b.is_ascii_alphabetic());
    verdict(s.len() >= 16 && has_digit && has_alpha && shannon_entropy(s) >= 3.5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Checksum::*;

    #[test]
    fn jwt_header() {
        let good = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        assert_eq!(jwt(good.as_bytes()), Valid);
        assert_eq!(jwt(b"eyJub3QiOiJqd3QifQ.eyJhIjoxfQ.sig"), Invalid); // no alg
        assert_eq!(jwt(b"eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.sig"), Invalid); // payload not JSON
        assert_eq!(jwt(b"a.b"), Invalid);
        // ["HS256"] as the header: an array, not an object.
        assert_eq!(jwt(b"WyJIUzI1NiJd.eyJhIjoxfQ.sig"), Invalid);
    }

    #[test]
    fn entropy_threshold() {
        assert_eq!(entropy(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), Valid);
        assert_eq!(entropy(b"9f8e7d6c5b4a39281706f5e4d3c2b1a0"), Valid);
        assert_eq!(entropy(b"password_reset_token"), Invalid);
        assert_eq!(entropy(b"aaaaaaaaaaaaaaaa1111"), Invalid);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}
