//! Seeded, realistic prompt-like corpora for benchmarks and tests (support
//! tickets, chat turns, JSON payloads, code, CSV) with PII and secrets
//! inserted at a chosen density. Not part of the supported API.

use std::collections::BTreeMap;

/// A generated corpus: documents plus how many entities of each type were
/// planted (the scanner must find exactly these).
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The documents (each a few hundred bytes to a few KB, like prompts).
    pub docs: Vec<String>,
    /// Planted entities per type.
    pub expected: BTreeMap<&'static str, usize>,
}

impl Corpus {
    /// Total bytes over all documents.
    pub fn bytes(&self) -> usize {
        self.docs.iter().map(String::len).sum()
    }

    /// Total planted entities.
    pub fn entities(&self) -> usize {
        self.expected.values().sum()
    }
}

/// SplitMix64: tiny, seedable, good enough to vary text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
    fn chars_of(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| char::from(alphabet[self.below(alphabet.len())]))
            .collect()
    }
}

const FILLER: &[&str] = &[
    "The deployment of version 2.14.3 finished at 10:42 on 2024-03-18 after 37 retries. ",
    "Order #48213 was shipped in 3 boxes weighing 12.5 kg, tracking will follow. ",
    "Please review PR 1234 and the failing test in src/main.rs line 88 before the release. ",
    "Latency p99 went from 120ms to 340ms (ratio 2.8x) between 14:00 and 15:30 yesterday. ",
    "The invoice total is $1,249.99 including 20% VAT; payment is due within 30 days. ",
    "can you summarise this thread and list the action items for the team? ",
    "I tried restarting the service but the error persists after the upgrade to 4.2. ",
    "We need the quarterly numbers by Friday, the board meeting moved to 9 am. ",
    "Customer says the app crashes when uploading files larger than 25 MB on Android 14. ",
    "Thanks for the quick reply, the workaround fixed it for now. ",
    "Our build uses 8 workers and 16 GB of memory; max_tokens is 1024 and temperature 0.7. ",
    "Meeting notes: budget approved, hiring plan delayed to Q3, see the shared doc. ",
    "The ticket was escalated to tier 2 because the refund of 45.00 EUR failed twice. ",
    "Use the staging cluster for tests; production access requires a change request. ",
    "Sure, here is a short summary of the main points discussed in the call today. ",
];

const CODE: &[&str] = &[
    "fn parse(input: &str) -> Result<u32, Error> {\n    let x = input.trim().parse::<u32>()?;\n    Ok(x * 2)\n}\n",
    "for (i, row) in enumerate(rows):\n    if row['qty'] > 10:\n        total += row['price'] * 1.2\n",
    "const cfg = { retries: 3, timeoutMs: 5000, region: 'eu-west-1' };\nexport default cfg;\n",
    "SELECT id, status, created_at FROM orders WHERE total > 100 ORDER BY created_at DESC LIMIT 50;\n",
    "commit 9f2c4e1b7a3d5e6f8091a2b3c4d5e6f708192a3b\nAuthor: ci-bot\n    bump deps to 1.13.2\n",
];

const JSON: &[&str] = &[
    r#"{"id": 12345, "status": "open", "priority": 2, "tags": ["billing", "urgent"], "created_at": "2024-05-01T12:00:00Z"}"#,
    r#"{"model": "gpt-4o", "temperature": 0.2, "messages": [{"role": "user", "content": "translate this paragraph"}]}"#,
    r#"{"sku": "WX-2291", "qty": 4, "price": 19.99, "warehouse": "B7", "eta_days": 3}"#,
];

const CSV: &[&str] = &[
    "id,item,qty,price\n1,widget,4,9.99\n2,gadget,10,19.50\n3,sprocket,7,3.25\n",
    "date,region,visits,conversions\n2024-01-01,north,1520,31\n2024-01-02,south,1333,27\n",
];

const FIRST: &[&str] = &[
    "jane", "omar", "li", "sofia", "raj", "emma", "noah", "chloe", "diego", "anna",
];
const LAST: &[&str] = &[
    "doe", "haddad", "wang", "rossi", "patel", "berg", "kim", "martin", "lopez", "novak",
];
const DOMAINS: &[&str] = &[
    "acme.io",
    "mail.example.com",
    "corp.net",
    "example.org",
    "shop.co.uk",
];
const SURNAMES: &[&str] = &[
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Haddad",
    "Kowalski",
];
const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BTC: &[&str] = &[
    "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
    "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
    "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
];
const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

fn luhn_complete(prefix: &str) -> String {
    // Append the check digit that makes `prefix` + d Luhn-valid.
    let sum: u32 = prefix
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let y = d * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                d
            }
        })
        .sum();
    format!("{prefix}{}", (10 - sum % 10) % 10)
}

fn iban_de(bban: &str) -> String {
    // Check digits: 98 - (BBAN + "DE00" as digits) mod 97.
    let rearranged = format!("{bban}131400");
    let rem = rearranged
        .bytes()
        .fold(0u32, |r, b| (r * 10 + u32::from(b - b'0')) % 97);
    format!("DE{:02}{bban}", 98 - rem)
}

/// One planted entity: (type, text around it).
fn entity(rng: &mut Rng) -> (&'static str, String) {
    match rng.below(12) {
        0 | 1 => {
            let e = format!(
                "{}.{}@{}",
                rng.pick(FIRST),
                rng.pick(LAST),
                rng.pick(DOMAINS)
            );
            ("EMAIL", format!("Customer email: {e}. "))
        }
        2 => {
            let p = match rng.below(3) {
                0 => format!("(415) 555-{}", rng.digits(4)),
                1 => format!("+44 20 7946 {}", rng.digits(4)),
                _ => format!("+1 212 555 {}", rng.digits(4)),
            };
            ("PHONE", format!("call me at {p} after lunch. "))
        }
        3 => {
            let raw = luhn_complete(&format!("4{}", rng.digits(14)));
            let card = match rng.below(3) {
                0 => format!(
                    "{} {} {} {}",
                    &raw[..4],
                    &raw[4..8],
                    &raw[8..12],
                    &raw[12..]
                ),
                1 => format!(
                    "{}-{}-{}-{}",
                    &raw[..4],
                    &raw[4..8],
                    &raw[8..12],
                    &raw[12..]
                ),
                _ => raw,
            };
            ("CREDIT_CARD", format!("the card {card} was declined. "))
        }
        4 => {
            let area = 100 + rng.below(500);
            let ssn = format!(
                "{area:03}-{:02}-{:04}",
                10 + rng.below(89),
                1000 + rng.below(8999)
            );
            ("US_SSN", format!("SSN on file {ssn}. "))
        }
        5 => (
            "IBAN",
            format!("refund to IBAN {} please. ", iban_de(&rng.digits(18))),
        ),
        6 => {
            let ip = format!(
                "10.{}.{}.{}",
                rng.below(255),
                rng.below(255),
                1 + rng.below(250)
            );
            ("IP_ADDRESS", format!("client ip {ip} timed out. "))
        }
        7 => {
            let key = match rng.below(3) {
                0 => format!("AKIA{}", rng.chars_of(BASE32, 16)),
                1 => format!("ghp_{}", rng.chars_of(ALNUM, 36)),
                _ => format!("sk_live_{}", rng.chars_of(ALNUM, 24)),
            };
            ("API_KEY", format!("leaked credential {key} in the logs. "))
        }
        8 => ("JWT", format!("Authorization: Bearer {JWT}\n")),
        9 => {
            let pw = rng.chars_of(ALNUM, 12);
            (
                "PASSWORD_IN_URL",
                format!(
                    "DATABASE_URL=postgres://svc:{pw}@db{}.internal:5432/app\n",
                    rng.below(9)
                ),
            )
        }
        10 => {
            let dob = format!(
                "19{}-0{}-1{}",
                50 + rng.below(49),
                1 + rng.below(8),
                rng.below(9)
            );
            ("DATE_OF_BIRTH", format!("patient DOB: {dob}. "))
        }
        _ => {
            if rng.below(2) == 0 {
                (
                    "CRYPTO_WALLET",
                    format!("send to {} today. ", rng.pick(BTC)),
                )
            } else {
                ("PERSON", format!("Dear Ms. {}, ", rng.pick(SURNAMES)))
            }
        }
    }
}

/// Generate about `bytes` bytes of documents with one planted entity per
/// `bytes_per_entity` bytes on average. Same seed, same corpus.
pub fn corpus(seed: u64, bytes: usize, bytes_per_entity: usize) -> Corpus {
    let mut rng = Rng(seed);
    let mut docs = Vec::new();
    let mut expected: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut total = 0;
    let mut budget = 0usize; // bytes since the last planted entity
    while total < bytes {
        let target = 300 + rng.below(3500);
        let mut doc = String::with_capacity(target + 256);
        let kind = rng.below(5);
        if kind == 1 {
            doc.push_str("user: ");
        }
        while doc.len() < target {
            let piece = match kind {
                2 if rng.below(3) == 0 => rng.pick(CODE),
                3 if rng.below(2) == 0 => rng.pick(JSON),
                4 if rng.below(2) == 0 => rng.pick(CSV),
                _ => rng.pick(FILLER),
            };
            doc.push_str(piece);
            if kind == 3 {
                doc.push('\n');
            }
            budget += piece.len();
            if budget >= bytes_per_entity {
                let (ty, text) = entity(&mut rng);
                *expected.entry(ty).or_default() += 1;
                budget = (budget + text.len()).saturating_sub(bytes_per_entity);
                doc.push_str(&text);
            }
        }
        total += doc.len();
        docs.push(doc);
    }
    Corpus { docs, expected }
}
