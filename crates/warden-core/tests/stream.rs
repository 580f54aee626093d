//! Streaming restore equals whole restore, for every way of cutting the
//! stream, with bounded memory.

use std::sync::Arc;

use proptest::prelude::*;
use warden_core::{StreamRestorer, Vault, MAX_TOKEN_LEN};

fn vault() -> Vault {
    let mut v = Vault::new();
    v.placeholder("EMAIL", "jane@example.org");
    v.placeholder("PERSON", "Zoë \"Z\" Ünal\n");
    v.placeholder("US_SSN", "078-05-1120");
    v.placeholder("A", "<EMAIL_1>"); // an original that looks like a token
    v
}

/// Cuts `bytes` at the given (sorted, deduplicated) points.
fn chunks<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut at = 0;
    for p in points {
        out.push(&bytes[at..p]);
        at = p;
    }
    out.push(&bytes[at..]);
    out
}

fn stream_bytes(r: &mut StreamRestorer, parts: &[&[u8]]) -> String {
    let mut out = String::new();
    for p in parts {
        out += &r.feed_bytes(p);
    }
    out
}

#[test]
fn holds_back_a_split_token_and_a_split_char() {
    let mut r = StreamRestorer::new(Arc::new(vault()));
    assert_eq!(r.feed("Hi <"), "Hi ");
    assert_eq!(r.feed("EMAIL_"), "");
    assert_eq!(r.feed("1> and <b>"), "jane@example.org and <b>");
    let euro = "€".as_bytes();
    assert_eq!(r.feed_bytes(&euro[..2]), "");
    assert_eq!(r.feed_bytes(&euro[2..]), "€");
    assert_eq!(r.feed("<US_SSN_1"), "");
    assert_eq!(r.finish(), "<US_SSN_1");
}

#[test]
fn a_cut_character_followed_by_str_becomes_a_replacement_char() {
    let mut r = StreamRestorer::new(Arc::new(Vault::new()));
    assert_eq!(r.feed_bytes(&"é".as_bytes()[..1]), "");
    assert_eq!(r.feed("x"), "\u{FFFD}x");
    let mut r = StreamRestorer::new(Arc::new(Vault::new()));
    assert_eq!(r.feed_bytes(&"é".as_bytes()[..1]), "");
    assert_eq!(r.finish(), "\u{FFFD}");
}

#[test]
fn memory_stays_bounded_on_endless_token_like_input() {
    let mut r = StreamRestorer::new(Arc::new(vault()));
    let mut fed = 0usize;
    let mut released = 0usize;
    for i in 0..10_000 {
        // Long runs that look like token starts, and some that are.
        let chunk = match i % 3 {
            0 => "<AAAAAAAAAAAA",
            1 => "AAAA_1234",
            _ => "<EMAIL_1><E",
        };
        fed += chunk.len();
        released += r.feed(chunk).len();
        // Restoring only lengthens, so everything but the bounded tail is out.
        assert!(
            fed - released.min(fed) <= MAX_TOKEN_LEN,
            "held {} bytes",
            fed - released
        );
    }
    let mut r = StreamRestorer::new(Arc::new(vault()));
    let mut fed = 0usize;
    let mut released = 0usize;
    for _ in 0..10_000 {
        let bytes = "€<".as_bytes();
        for b in bytes {
            fed += 1;
            released += r.feed_bytes(std::slice::from_ref(b)).len();
            assert!(fed - released <= MAX_TOKEN_LEN + 3);
        }
    }
}

#[test]
fn json_mode_escapes_and_matches_restore_json() {
    let v = Arc::new(vault());
    let args = r#"{"to":"<EMAIL_1>","who":"<PERSON_1>"}"#;
    let want = v.restore_json(args);
    for cut in 0..=args.len() {
        let mut r = StreamRestorer::new(v.clone()).json_escaped();
        let mut out = r.feed(&args[..cut]);
        out += &r.feed(&args[cut..]);
        out += &r.finish();
        assert_eq!(out, want, "cut at {cut}");
    }
    let parsed: serde_json::Value = serde_json::from_str(&want).unwrap();
    assert_eq!(parsed["who"], "Zoë \"Z\" Ünal\n");
}

fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("<EMAIL_1>".to_string()),
        Just("<PERSON_1>".to_string()),
        Just("<US_SSN_1>".to_string()),
        Just("<A_1>".to_string()),
        Just("<EMAIL_2>".to_string()),
        Just("<US_SSN_".to_string()),
        Just("<<".to_string()),
        Just("€😀é".to_string()),
        "[<>A-Z_0-9a-f]{0,6}",
        "\\PC{0,6}",
    ];
    prop::collection::vec(piece, 0..16).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any cut points, including inside multi-byte characters and tokens.
    #[test]
    fn streaming_equals_whole_restore(s in text(), cuts in prop::collection::vec(any::<usize>(), 0..12), json in any::<bool>()) {
        let v = Arc::new(vault());
        let want = if json { v.restore_json(&s) } else { v.restore(&s) };
        let mut r = StreamRestorer::new(v.clone());
        if json { r = r.json_escaped(); }
        let mut got = stream_bytes(&mut r, &chunks(s.as_bytes(), &cuts));
        got += &r.finish();
        prop_assert_eq!(got, want);
    }

    /// One byte at a time is the worst chunking.
    #[test]
    fn byte_by_byte_equals_whole_restore(s in text()) {
        let v = Arc::new(vault());
        let mut r = StreamRestorer::new(v.clone());
        let mut got = String::new();
        for b in s.as_bytes() {
            got += &r.feed_bytes(std::slice::from_ref(b));
        }
        got += &r.finish();
        prop_assert_eq!(got, v.restore(&s));
    }

    /// `feed(&str)` at char boundaries gives the same result.
    #[test]
    fn str_chunks_equal_whole_restore(s in text(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10)) {
        let v = Arc::new(vault());
        let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).chain(std::iter::once(s.len())).collect();
        let mut points: Vec<usize> = cuts.iter().map(|c| *c.get(&bounds)).collect();
        points.sort_unstable();
        let mut r = StreamRestorer::new(v.clone());
        let mut got = String::new();
        let mut at = 0;
        for p in points {
            got += &r.feed(&s[at..p]);
            at = p;
        }
        got += &r.feed(&s[at..]);
        got += &r.finish();
        prop_assert_eq!(got, v.restore(&s));
    }

    /// Invalid UTF-8 is replaced exactly as `from_utf8_lossy` would on the
    /// whole stream, whatever the chunking.
    #[test]
    fn invalid_utf8_matches_lossy_decoding(
        bytes in prop::collection::vec(prop_oneof![any::<u8>(), Just(b'<'), 0x80u8..0xc0, 0xe0u8..0xf5], 0..64),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let v = Arc::new(vault());
        let mut r = StreamRestorer::new(v.clone());
        let mut got = stream_bytes(&mut r, &chunks(&bytes, &cuts));
        got += &r.finish();
        prop_assert_eq!(got, v.restore(&String::from_utf8_lossy(&bytes)));
    }
}
