//! Every inline example of every built-in pack, through the one checker that
//! `warden test-patterns` uses. All failures are reported at once.

use warden_core::{builtin_pack_sources, check_examples, Pack, Scanner};

#[test]
fn all_builtin_pack_examples_pass() {
    let scanner = Scanner::builtin().expect("built-in packs compile");
    let report = check_examples(&scanner, scanner.packs());
    let lines: Vec<String> = report.failures.iter().map(|f| f.to_string()).collect();
    assert!(report.ok(), "{}\n{}", lines.join("\n"), report.summary());
    assert!(
        report.passed >= 6 * scanner.rule_count(),
        "{}",
        report.summary()
    );
}

#[test]
fn every_builtin_pack_parses_and_has_rules() {
    for (path, src) in builtin_pack_sources() {
        let pack = Pack::parse(src, path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!pack.rules().is_empty(), "{path} has no rules");
    }
}

#[derive(serde::Deserialize)]
struct GluedCases {
    case: Vec<GluedCase>,
}

#[derive(serde::Deserialize)]
struct GluedCase {
    text: String,
    found: Vec<(String, String)>,
}

/// Values glued to the word around them (`tests/data/glued.toml`), found
/// whole and in text order, also when the same rule matches elsewhere.
#[test]
fn glued_values_are_found() {
    let scanner = Scanner::builtin().expect("built-in packs compile");
    let cases: GluedCases = toml::from_str(include_str!("data/glued.toml")).expect("glued.toml");
    for c in cases.case {
        let got: Vec<(String, String)> = scanner
            .scan(&c.text)
            .iter()
            .map(|f| (f.entity().to_string(), c.text[f.start..f.end].to_string()))
            .collect();
        assert_eq!(got, c.found, "{}", c.text);
    }
}

#[test]
fn glued_needs_literals_or_digits() {
    let pack = r#"
[pack]
name = "bad"
description = "glued on a context rule"

[[rule]]
id = "bad.glued"
entity = "X"
description = "x"
regex = '''[0-9]{9}'''
prefilter = { context = true, glued = true }
context = { words = ["routing"] }
score = 0.5
positive = []
negative = []
"#;
    let err = Pack::parse(pack, "bad.toml").expect_err("glued with context is rejected");
    assert!(err.to_string().contains("glued"), "{err}");
}

/// A pack of one rule with the given regex and prefilter.
fn one_rule_pack(regex: &str, prefilter: &str) -> String {
    format!(
        r#"
[pack]
name = "gates"
description = "prefilter gates"

[[rule]]
id = "gates.x"
entity = "X"
description = "x"
regex = '''{regex}'''
prefilter = {{ {prefilter} }}
score = 0.9
positive = []
negative = []
"#
    )
}

/// One digit-anchored rule with the given `digits` gate.
fn digit_pack(regex: &str, digits: &str) -> String {
    one_rule_pack(
        regex,
        &format!("digits = {{ {digits} }}, before = 3, after = 8"),
    )
}

/// The `separators` and `letters_touch` gates skip the runs they name, even
/// where the regex would match (so a gate that did nothing would fail here).
#[test]
fn separator_and_touch_gates_skip_what_they_name() {
    // (regex, gate, text, found)
    let cases = [
        (
            r"[0-9]{2}[:-][0-9]{2}",
            r#"min = 4, separators = "-""#,
            "at 12-34 ok",
            true,
        ),
        (
            r"[0-9]{2}[:-][0-9]{2}",
            r#"min = 4, separators = "-""#,
            "at 12:34 ok",
            false,
        ),
        (
            r"[0-9]{2}[:-][0-9]{2}",
            r#"min = 4, separators = """#,
            "at 12-34 ok",
            false,
        ),
        (r"[0-9]{2}[:-][0-9]{2}", "min = 4", "at 12:34 ok", true),
        (
            r"[A-Z]{2} ?[0-9]{2}",
            "min = 2, letters_before = 2",
            "id AB 12 ok",
            true,
        ),
        (
            r"[A-Z]{2} ?[0-9]{2}",
            "min = 2, letters_before = 2, letters_touch = true",
            "id AB 12 ok",
            false,
        ),
        (
            r"[A-Z]{2} ?[0-9]{2}",
            "min = 2, letters_before = 2, letters_touch = true",
            "id AB12 ok",
            true,
        ),
    ];
    for (regex, gate, text, found) in cases {
        let pack = Pack::parse(&digit_pack(regex, gate), "gates.toml").unwrap();
        let scanner = Scanner::builder().pack(pack).build().unwrap();
        assert_eq!(!scanner.scan(text).is_empty(), found, "{gate} on {text:?}");
    }
}

#[test]
fn malformed_digit_gates_are_rejected_at_load() {
    let cases = [
        (r#"min = 4, max = 2"#, "max 2 is below min 4"),
        (r#"min = 4, separators = "x""#, "separators: 'x'"),
        (r#"min = 4, letters_touch = true"#, "letters_touch needs"),
        (r#"min = 4, letters_after = 3"#, "letters_after at most 2"),
    ];
    for (gate, want) in cases {
        let pack = Pack::parse(&digit_pack("[0-9]{4}", gate), "gates.toml").unwrap();
        let err = Scanner::builder().pack(pack).build().expect_err(gate);
        assert!(err.to_string().contains(want), "{gate}: {err}");
    }
}

/// One rule anchored on the literal `cue`, with extra prefilter keys.
fn literal_pack(regex: &str, extra: &str) -> String {
    one_rule_pack(
        regex,
        &format!(r#"literals = ["cue"], before = 0, after = 20{extra}"#),
    )
}

/// `next` skips a literal anchor unless the byte after it (past spaces and
/// tabs) is in the class, even where the regex would match.
#[test]
fn next_gate_skips_anchors_followed_by_other_bytes() {
    let cases = [
        ("", "cue says", true),
        (", next = '[A-Z:]'", "cue says", false),
        (", next = '[A-Z:]'", "cue \t Says", true),
        (", next = '[A-Z:]'", "cue: says", true),
        (", next = '[A-Z:]'", "cue", false),
    ];
    for (extra, text, found) in cases {
        let pack = Pack::parse(&literal_pack(r"cue[ \t:]*\w*", extra), "next.toml").unwrap();
        let scanner = Scanner::builder().pack(pack).build().unwrap();
        assert_eq!(!scanner.scan(text).is_empty(), found, "{extra} on {text:?}");
    }
}

#[test]
fn malformed_next_gates_are_rejected_at_load() {
    let cases = [
        (", next = '[A-Z'", "prefilter next"),
        (r", next = '[^\x00-\xFF]'", "matches no single byte"),
    ];
    let on_digits = digit_pack("[0-9]{4}", "min = 4").replace("before", "next = '[A-Z]', before");
    let sources = cases
        .iter()
        .map(|&(extra, want)| (literal_pack("cue", extra), want))
        .chain([(on_digits, "needs literals")]);
    for (src, want) in sources {
        let built = Pack::parse(&src, "next.toml").and_then(|p| Scanner::builder().pack(p).build());
        let err = built.expect_err(&src);
        assert!(err.to_string().contains(want), "{src}: {err}");
    }
}

/// `inside` finds a literal that ends a word before a number (a compound
/// such as `Hauptstraße 42`), which the word-start lookup cannot, and only
/// there.
#[test]
fn inside_literals_end_the_word_before_a_number() {
    let regex = r"\b[A-Z][a-z]+(?:weg|stra\xC3\x9Fe) [0-9]{1,4}\b";
    let lits = r#"literals = ["weg", "stra\u00DFe"], before = 20, after = 6"#;
    let scan = |prefilter: &str, text: &str| {
        let pack = Pack::parse(&one_rule_pack(regex, prefilter), "inside.toml").unwrap();
        let scanner = Scanner::builder().pack(pack).build().unwrap();
        scanner
            .scan(text)
            .iter()
            .map(|f| text[f.start..f.end].to_string())
            .collect::<Vec<_>>()
    };
    let inside = format!("inside = true, {lits}");
    let text = "an Lindenweg 3 und Hauptstraße 42, nicht Lindenweg heute";
    assert_eq!(scan(&inside, text), ["Lindenweg 3", "Hauptstraße 42"]);
    // At word starts only (the default), the compounds are not found.
    assert!(scan(lits, text).is_empty());
    // A number right after the literal, or a literal that is a whole word,
    // is not the place.
    assert!(scan(&inside, "Lindenweg3 and the weg 5").is_empty());
    // `case_insensitive` holds for them as for other literals.
    let upper = r"\b[A-Z]+(?:WEG|weg) [0-9]{1,4}\b";
    let pack = |ci: &str| {
        let src = one_rule_pack(upper, &format!("inside = true, {ci}{lits}"));
        Scanner::builder()
            .pack(Pack::parse(&src, "inside.toml").unwrap())
            .build()
            .unwrap()
    };
    assert!(pack("").scan("an LINDENWEG 3").is_empty());
    assert_eq!(
        pack("case_insensitive = true, ")
            .scan("an LINDENWEG 3")
            .len(),
        1
    );
}

#[test]
fn malformed_inside_prefilters_are_rejected_at_load() {
    let cases = [
        r#"inside = true, word = true, literals = ["weg"]"#,
        r#"inside = true, glued = true, literals = ["weg"]"#,
        r#"inside = true, literals = ["eg"]"#,
        r#"inside = true, digits = { min = 2 }"#,
    ];
    for prefilter in cases {
        let src = one_rule_pack("weg", prefilter);
        let built =
            Pack::parse(&src, "inside.toml").and_then(|p| Scanner::builder().pack(p).build());
        let err = built.expect_err(prefilter);
        assert!(
            err.to_string().contains("inside = true"),
            "{prefilter}: {err}"
        );
    }
}
