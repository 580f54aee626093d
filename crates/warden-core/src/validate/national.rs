//! National identifiers outside the US: the check digits and structural
//! rules their issuers publish. Every function takes the matched bytes
//! (separators included, as the pack's regex found them) and never panics.

use super::verdict;
use crate::finding::Checksum;

/// The ASCII digits of `s` (separators skipped) into a fixed array, or
/// `None` unless there are exactly `N`.
fn fixed<const N: usize>(s: &[u8]) -> Option<[u32; N]> {
    match at_most::<N>(s)? {
        (out, n) if n == N => Some(out),
        _ => None,
    }
}

/// The ASCII digits of `s` (separators skipped) and how many there are, or
/// `None` if there are more than `N`.
fn at_most<const N: usize>(s: &[u8]) -> Option<([u32; N], usize)> {
    let mut out = [0u32; N];
    let mut n = 0;
    for &b in s {
        if b.is_ascii_digit() {
            *out.get_mut(n)? = u32::from(b - b'0');
            n += 1;
        }
    }
    Some((out, n))
}

/// Letters and digits of `s` (separators skipped), upper-cased, into a fixed
/// array, or `None` unless there are exactly `N`.
fn alnum<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    let mut n = 0;
    for &b in s {
        if b.is_ascii_alphanumeric() {
            *out.get_mut(n)? = b.to_ascii_uppercase();
            n += 1;
        }
    }
    (n == N).then_some(out)
}

fn weighted(d: &[u32], w: &[u32]) -> u32 {
    d.iter().zip(w).map(|(a, b)| a * b).sum()
}

fn all_same(d: &[u32]) -> bool {
    d.iter().all(|&x| x == d[0])
}

/// UK NHS number: 10 digits, modulus 11 with weights 10..2 (a check value of
/// 10 is never issued).
pub fn uk_nhs(s: &[u8]) -> Checksum {
    let Some(d) = fixed::<10>(s) else {
        return Checksum::Invalid;
    };
    let check = match 11 - weighted(&d[..9], &[10, 9, 8, 7, 6, 5, 4, 3, 2]) % 11 {
        11 => 0,
        c => c,
    };
    verdict(check != 10 && check == d[9] && !all_same(&d))
}

/// UK National Insurance number: two prefix letters as HMRC allocates them
/// (neither D, F, I, Q, U, V; O not second; not BG, GB, KN, NK, NT, TN,
/// ZZ), six digits, suffix A–D.
pub fn uk_nino(s: &[u8]) -> Checksum {
    let Some(c) = alnum::<9>(s) else {
        return Checksum::Invalid;
    };
    let bad = |b: u8| b"DFIQUV".contains(&b);
    let prefix = &c[..2];
    let ok = c[..2].iter().all(u8::is_ascii_uppercase)
        && c[2..8].iter().all(u8::is_ascii_digit)
        && (b'A'..=b'D').contains(&c[8])
        && !bad(c[0])
        && !bad(c[1])
        && c[1] != b'O'
        && ![b"BG", b"GB", b"KN", b"NK", b"NT", b"TN", b"ZZ"]
            .iter()
            .any(|p| prefix == *p);
    verdict(ok)
}

/// Verhoeff check (the Aadhaar check digit): `d` read from the right.
fn verhoeff(d: &[u32]) -> bool {
    const D: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const P: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    let c = d.iter().rev().enumerate().fold(0u8, |c, (i, &x)| {
        D[usize::from(c)][usize::from(P[i % 8][x as usize])]
    });
    c == 0
}

/// Indian Aadhaar number: 12 digits, the first 2–9, Verhoeff check digit.
pub fn in_aadhaar(s: &[u8]) -> Checksum {
    let Some(d) = fixed::<12>(s) else {
        return Checksum::Invalid;
    };
    verdict(d[0] >= 2 && verhoeff(&d) && !all_same(&d[..11]))
}

/// Indian PAN: five letters (the fourth the holder type: C, P, H, F, A, T,
/// B, L, J or G), four digits, a letter.
pub fn in_pan(s: &[u8]) -> Checksum {
    let Some(c) = alnum::<10>(s) else {
        return Checksum::Invalid;
    };
    let ok = c[..5].iter().all(u8::is_ascii_uppercase)
        && b"CPHFATBLJG".contains(&c[3])
        && c[5..9].iter().all(u8::is_ascii_digit)
        && c[9].is_ascii_uppercase()
        && &c[5..9] != b"0000";
    verdict(ok)
}

/// Brazilian CPF: 11 digits, two modulus-11 check digits; not one digit
/// repeated (those pass the checksum and are placeholders).
pub fn br_cpf(s: &[u8]) -> Checksum {
    let Some(d) = fixed::<11>(s) else {
        return Checksum::Invalid;
    };
    let dv =
        |n: usize| weighted(&d[..n], &[11, 10, 9, 8, 7, 6, 5, 4, 3, 2][10 - n..]) * 10 % 11 % 10;
    verdict(!all_same(&d) && dv(9) == d[9] && dv(10) == d[10])
}

/// Brazilian CNPJ: 14 digits, two modulus-11 check digits.
pub fn br_cnpj(s: &[u8]) -> Checksum {
    let Some(d) = fixed::<14>(s) else {
        return Checksum::Invalid;
    };
    const W: [u32; 13] = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
    let dv = |n: usize| match weighted(&d[..n], &W[13 - n..]) % 11 {
        r if r < 2 => 0,
        r => 11 - r,
    };
    verdict(!all_same(&d) && dv(12) == d[12] && dv(13) == d[13])
}

const NIF_LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

/// Spanish DNI/NIF (`12345678Z`) or NIE (`X1234567L`; X, Y, Z stand for 0, 1,
/// 2): the number modulo 23 picks the control letter.
pub fn es_nif(s: &[u8]) -> Checksum {
    let Some(c) = alnum::<9>(s) else {
        return Checksum::Invalid;
    };
    let first = match c[0] {
        b'X' => 0,
        b'Y' => 1,
        b'Z' => 2,
        b @ b'0'..=b'9' => u32::from(b - b'0'),
        _ => return Checksum::Invalid,
    };
    if !c[1..8].iter().all(u8::is_ascii_digit) {
        return Checksum::Invalid;
    }
    let n = c[1..8]
        .iter()
        .fold(first, |n, &b| n * 10 + u32::from(b - b'0'));
    verdict(NIF_LETTERS[(n % 23) as usize] == c[8])
}

/// Italian codice fiscale (16 characters, no omocodia substitutions): the
/// layout of surname, name, birth date and place, and the check letter.
pub fn it_fiscal_code(s: &[u8]) -> Checksum {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    let Some(c) = alnum::<16>(s) else {
        return Checksum::Invalid;
    };
    let layout = b"AAAAAA99A99A999A";
    if !c.iter().zip(layout).all(|(&b, &l)| {
        if l == b'9' {
            b.is_ascii_digit()
        } else {
            b.is_ascii_uppercase()
        }
    }) || !b"ABCDEHLMPRST".contains(&c[8])
    {
        return Checksum::Invalid;
    }
    let day = (c[9] - b'0') * 10 + (c[10] - b'0');
    if !(1..=31).contains(&day) && !(41..=71).contains(&day) {
        return Checksum::Invalid;
    }
    let value = |b: u8| {
        if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A')
        }
    };
    let sum: u32 = c[..15]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if i % 2 == 0 {
                ODD[value(b) as usize]
            } else {
                value(b)
            }
        })
        .sum();
    verdict(u32::from(c[15] - b'A') == sum % 26)
}

/// Polish PESEL: 11 digits, weights 1-3-7-9, a birth date whose month
/// carries the century (+80 for the 1800s, +20 for the 2000s, ...).
pub fn pl_pesel(s: &[u8]) -> Checksum {
    let Some(d) = fixed::<11>(s) else {
        return Checksum::Invalid;
    };
    let check = (10 - weighted(&d[..10], &[1, 3, 7, 9, 1, 3, 7, 9, 1, 3]) % 10) % 10;
    let month = (d[2] * 10 + d[3]) % 20;
    let day = d[4] * 10 + d[5];
    verdict(check == d[10] && (1..=12).contains(&month) && (1..=31).contains(&day))
}

/// Singapore NRIC/FIN: S, T, F, G or M, seven digits, a check letter from
/// weights 2-7-6-5-4-3-2 (offset 4 for T and G, 3 for M).
pub fn sg_nric(s: &[u8]) -> Checksum {
    let Some(c) = alnum::<9>(s) else {
        return Checksum::Invalid;
    };
    if !c[1..8].iter().all(u8::is_ascii_digit) {
        return Checksum::Invalid;
    }
    let mut d = [0u32; 7];
    for (x, &b) in d.iter_mut().zip(&c[1..8]) {
        *x = u32::from(b - b'0');
    }
    let sum = weighted(&d, &[2, 7, 6, 5, 4, 3, 2]);
    let letter_at = |offset: u32, table: &[u8; 11]| table[((sum + offset) % 11) as usize];
    let letter = match c[0] {
        b'S' => letter_at(0, b"JZIHGFEDCBA"),
        b'T' => letter_at(4, b"JZIHGFEDCBA"),
        b'F' => letter_at(0, b"XWUTRQPNMLK"),
        b'G' => letter_at(4, b"XWUTRQPNMLK"),
        // The M series (2022) reads its own table from the other end.
        b'M' => letter_at(3, b"XWUTRQPNJLK"),
        _ => return Checksum::Invalid,
    };
    verdict(letter == c[8])
}

/// Australian Business Number: 11 digits; subtract 1 from the first,
/// weights 10-1-3-5-...-19, divisible by 89.
pub fn au_abn(s: &[u8]) -> Checksum {
    let Some(mut d) = fixed::<11>(s) else {
        return Checksum::Invalid;
    };
    if d[0] == 0 {
        return Checksum::Invalid;
    }
    d[0] -= 1;
    verdict(weighted(&d, &[10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19]) % 89 == 0)
}

/// Australian Tax File Number: 9 digits, weights 1-4-3-7-5-8-6-9-10,
/// divisible by 11.
pub fn au_tfn(s: &[u8]) -> Checksum {
    let Some(d) = fixed::<9>(s) else {
        return Checksum::Invalid;
    };
    verdict(!all_same(&d) && weighted(&d, &[1, 4, 3, 7, 5, 8, 6, 9, 10]) % 11 == 0)
}

/// Australian Medicare card number: 10 digits (an 11th, the position on
/// the card, is allowed), the first 2–6, the ninth a weighted check digit.
pub fn au_medicare(s: &[u8]) -> Checksum {
    let Some((d, n)) = at_most::<11>(s) else {
        return Checksum::Invalid;
    };
    if n < 10 || !(2..=6).contains(&d[0]) {
        return Checksum::Invalid;
    }
    verdict(weighted(&d[..8], &[1, 3, 7, 9, 1, 3, 7, 9]) % 10 == d[8])
}

/// Finnish personal identity code `DDMMYYCZZZQ`: a real date, a century sign
/// (`+`, `-`, `A`–`F`, `U`–`Y`), and the check character of the nine digits
/// modulo 31.
pub fn fi_personal_id(s: &[u8]) -> Checksum {
    const CHECK: &[u8; 31] = b"0123456789ABCDEFHJKLMNPRSTUVWXY";
    let [d0, d1, m0, m1, y0, y1, sign, z0, z1, z2, q] = match s {
        [a, b, c, d, e, f, g, h, i, j, k] => [*a, *b, *c, *d, *e, *f, *g, *h, *i, *j, *k],
        _ => return Checksum::Invalid,
    };
    let nine = [d0, d1, m0, m1, y0, y1, z0, z1, z2];
    if !nine.iter().all(u8::is_ascii_digit) || !b"+-ABCDEFUVWXY".contains(&sign) {
        return Checksum::Invalid;
    }
    let v = |b: u8| u32::from(b - b'0');
    let (day, month) = (v(d0) * 10 + v(d1), v(m0) * 10 + v(m1));
    let n = nine.iter().fold(0u32, |n, &b| n * 10 + v(b));
    verdict(
        (1..=31).contains(&day)
            && (1..=12).contains(&month)
            && CHECK[(n % 31) as usize] == q.to_ascii_uppercase(),
    )
}

/// US ITIN: `9XX-XX-XXXX` with the middle group in the ranges the IRS
/// issues (50–65, 70–88, 90–92, 94–99).
pub fn us_itin(s: &[u8]) -> Checksum {
    let Some(d) = fixed::<9>(s) else {
        return Checksum::Invalid;
    };
    let group = d[3] * 10 + d[4];
    verdict(
        d[0] == 9
            && matches!(group, 50..=65 | 70..=88 | 90..=92 | 94..=99)
            && d[5..].iter().any(|&x| x != 0),
    )
}

/// Canadian Social Insurance Number: 9 digits, Luhn, not starting with 0 or
/// 8 (never assigned).
pub fn ca_sin(s: &[u8]) -> Checksum {
    let Some(d) = fixed::<9>(s) else {
        return Checksum::Invalid;
    };
    let sum: u32 = d
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                (x * 2) / 10 + (x * 2) % 10
            } else {
                x
            }
        })
        .sum();
    verdict(d[0] != 0 && d[0] != 8 && sum % 10 == 0)
}

/// Dutch BSN: 9 digits, the "elfproef" (weights 9..2 and −1, divisible by 11).
pub fn nl_bsn(s: &[u8]) -> Checksum {
    let Some(d) = fixed::<9>(s) else {
        return Checksum::Invalid;
    };
    let sum = weighted(&d[..8], &[9, 8, 7, 6, 5, 4, 3, 2]);
    verdict(!all_same(&d) && sum >= d[8] && (sum - d[8]) % 11 == 0)
}

/// German tax identification number (Steuer-IdNr): 11 digits, the first not
/// 0, ISO 7064 MOD 11,10 check digit.
pub fn de_tax_id(s: &[u8]) -> Checksum {
    let Some(d) = fixed::<11>(s) else {
        return Checksum::Invalid;
    };
    let mut p = 10;
    for &x in &d[..10] {
        let s = match (x + p) % 10 {
            0 => 10,
            s => s,
        };
        p = (2 * s) % 11;
    }
    let check = match 11 - p {
        10 => 0,
        c => c,
    };
    verdict(d[0] != 0 && check == d[10] && !all_same(&d))
}

/// French social security number (NIR): sex 1/2, year, month, department
/// (2A/2B for Corsica), commune, order, and a key of 97 minus the 13-digit
/// number modulo 97 (Corsica's 2A counts as 19, 2B as 18).
pub fn fr_nir(s: &[u8]) -> Checksum {
    let Some(c) = alnum::<15>(s) else {
        return Checksum::Invalid;
    };
    let dept = match (c[5], c[6]) {
        (b'2', b'A') => *b"19",
        (b'2', b'B') => *b"18",
        (a, b) => [a, b],
    };
    let body = number(c[..5].iter().chain(&dept).chain(&c[7..13]));
    let key = number(c[13..].iter());
    let month = number(c[3..5].iter());
    match (body, key, month) {
        (Some(n), Some(k), Some(m)) => {
            verdict(matches!(c[0], b'1' | b'2') && m >= 1 && k == 97 - n % 97)
        }
        _ => Checksum::Invalid,
    }
}

/// The decimal number the digits spell, or `None` if one is not a digit.
fn number<'a>(mut bytes: impl Iterator<Item = &'a u8>) -> Option<u64> {
    bytes.try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// ISO 3166-1 alpha-2 country codes (and XK, which SWIFT uses for Kosovo),
/// two letters each.
const COUNTRIES: &str = concat!(
    "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZCACCCDCFCGCHCICKCLCMCN",
    "COCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGYHKHM",
    "HNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULVLYMAMCMDMEMFMGMHMK",
    "MLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPKPLPMPNPRPSPTPWPYQARERORSRURW",
    "SASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZUAUGUMUSUYUZVAVCVEVGVI",
    "VNVUWFWSYEYTZAZMZWXK",
);

/// SWIFT/BIC code: four letters (bank), an ISO 3166 country, two letters or
/// digits (location), an optional three-character branch.
pub fn swift_bic(s: &[u8]) -> Checksum {
    if !matches!(s.len(), 8 | 11)
        || !s[..6].iter().all(u8::is_ascii_uppercase)
        || !s[6..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Checksum::Invalid;
    }
    verdict(COUNTRIES.as_bytes().chunks_exact(2).any(|c| c == &s[4..6]))
}

/// US DEA registration number (Presidio's `MEDICAL_LICENSE`): two letters
/// (or a letter and 9), seven digits, the last one a check digit of the
/// other six.
pub fn us_dea(s: &[u8]) -> Checksum {
    let [a, b, rest @ ..] = s else {
        return Checksum::Invalid;
    };
    if !a.is_ascii_uppercase() || !(b.is_ascii_uppercase() || *b == b'9') {
        return Checksum::Invalid;
    }
    // Seven bytes, all of them digits: no separators inside a DEA number.
    let Some(d) = fixed::<7>(rest).filter(|_| rest.len() == 7) else {
        return Checksum::Invalid;
    };
    let sum = d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5]);
    verdict(sum % 10 == d[6])
}

#[cfg(test)]
mod tests {
    use super::*;
    use Checksum::*;

    fn check(f: fn(&[u8]) -> Checksum, valid: &[&str], invalid: &[&str]) {
        for v in valid {
            assert_eq!(f(v.as_bytes()), Valid, "{v} should be valid");
        }
        for v in invalid {
            assert_eq!(f(v.as_bytes()), Invalid, "{v} should be invalid");
        }
    }

    // Published examples: NHS Digital's 943 476 5919; HMRC's NINO format
    // (QQ 12 34 56 C is its documentation-only prefix); UIDAI-format
    // Verhoeff numbers; the Receita Federal examples; Spain's interior
    // ministry letter table; the Agenzia delle Entrate example; PESEL
    // 44051401359; ICA's S1234567D; ATO's ABN 51 824 753 556 and TFN
    // 123 456 782; DVV's 131052-308T; BZSt's
    // 86095742719.
    #[test]
    fn uk() {
        check(
            uk_nhs,
            &["943 476 5919", "4010232137", "485 777 3457"],
            &["943 476 5918", "0000000000", "123456789"],
        );
        check(
            uk_nino,
            &["AB 12 34 56 C", "JG103759A", "ce123456d"],
            &[
                "QQ 12 34 56 C",
                "GB123456A",
                "AO123456B",
                "AB123456E",
                "DA123456A",
            ],
        );
    }

    #[test]
    fn india() {
        check(
            in_aadhaar,
            &["2341 2341 2346", "499118665246", "7365 8924 3014"],
            &["2341 2341 2345", "1341 2341 2346", "234123412"],
        );
        check(
            in_pan,
            &["ABCPD1234E", "AAACB1234F", "bnzpm2501f"],
            &["ABCDE1234F", "ABCPD0000E", "ABCP1234E"],
        );
    }

    #[test]
    fn brazil() {
        check(
            br_cpf,
            &["529.982.247-25", "11144477735", "123.456.789-09"],
            &["529.982.247-24", "111.111.111-11", "5299822472"],
        );
        check(
            br_cnpj,
            &["11.222.333/0001-81", "11444777000161", "04.252.011/0001-10"],
            &["11.222.333/0001-82", "00.000.000/0000-00", "1122233300018"],
        );
    }

    #[test]
    fn spain_italy() {
        check(
            es_nif,
            &[
                "12345678Z",
                "00000000T",
                "X1234567L",
                "Y-1234567-X",
                "Z1234567R",
            ],
            &["12345678A", "W1234567L", "X123456AL"],
        );
        check(
            it_fiscal_code,
            &["RSSMRA85T10A562S", "MRTMTT91D08F205J", "BNCLRD70A01H501A"],
            &[
                "RSSMRA85T10A562T",
                "RSSMRA85Z10A562S",
                "RSSMRA85T99A562S",
                "RSSMRA85T10A56",
            ],
        );
    }

    #[test]
    fn poland_singapore() {
        check(
            pl_pesel,
            &["44051401359", "02070803628", "90121103814"],
            &["44051401358", "44151401359", "4405140135"],
        );
        check(
            sg_nric,
            &[
                "S1234567D",
                "T1234567J",
                "F1234567N",
                "G1234567X",
                "S9812381D",
                "T0123456G",
                "M1234567K",
            ],
            &["S1234567A", "A1234567D", "S123456D"],
        );
    }

    #[test]
    fn australia() {
        check(
            au_abn,
            &["51 824 753 556", "53004085616", "33 102 417 032"],
            &["51 824 753 557", "01824753556", "5182475355"],
        );
        check(
            au_tfn,
            &["123 456 782", "876 543 210", "459599230"],
            &["123 456 783", "111111111", "12345678"],
        );
        check(
            au_medicare,
            &["2123 45670 1", "2950 37187 1", "3125860291"],
            &["2123 45671 1", "1123456701", "212345670"],
        );
    }

    #[test]
    fn nordic_north_america() {
        check(
            fi_personal_id,
            &["131052-308T", "010594Y9054", "280264-051U"],
            &["131052-308U", "321052-308T", "131052G308T"],
        );
        check(
            us_itin,
            &["912-70-1234", "900 50 0001", "999-99-9999"],
            &["912-66-1234", "812-70-1234", "912-93-1234", "912-70-0000"],
        );
        check(
            ca_sin,
            &["130 692 544", "278-412-358", "523198760"],
            // CRA's documentation example starts with 0, which is never
            // assigned (reserved for fictitious numbers).
            &["046 454 286", "130 692 545", "846 454 286", "13069254"],
        );
    }

    #[test]
    fn europe() {
        check(
            nl_bsn,
            &["111222333", "123456782"],
            &["111222334", "111111111", "12345678"],
        );
        check(
            de_tax_id,
            &["86095742719", "47036892816", "65929970489"],
            &["86095742718", "06095742719", "8609574271"],
        );
        check(
            fr_nir,
            &[
                "1 85 05 78 006 084 91",
                "2 55 08 2A 004 004 91",
                "151024610204325",
            ],
            &[
                "1 85 05 78 006 084 92",
                "3 85 05 78 006 084 91",
                "1 85 05 2C 006 084 91",
            ],
        );
    }

    #[test]
    fn swift_and_dea() {
        check(
            swift_bic,
            &["DEUTDEFF", "NWBKGB2L", "BOFAUS3NXXX"],
            &["DEUTXXFF", "DEUTDEF", "DEUT1EFF"],
        );
        check(
            us_dea,
            &["AB1234563", "BJ6125341", "F91234563"],
            &["AB1234564", "1B1234563", "AB123456"],
        );
    }

    #[test]
    fn never_panics_on_junk() {
        let junk: [&[u8]; 6] = [
            b"",
            b"\xff\xfe",
            b"2A2A2A2A2A2A2A2",
            b"ZZZZZZZZZ",
            b"99999999999999999999",
            b"1 85 05 2B",
        ];
        let all: [fn(&[u8]) -> Checksum; 21] = [
            uk_nhs,
            uk_nino,
            in_aadhaar,
            in_pan,
            br_cpf,
            br_cnpj,
            es_nif,
            it_fiscal_code,
            pl_pesel,
            sg_nric,
            au_abn,
            au_tfn,
            au_medicare,
            fi_personal_id,
            us_itin,
            ca_sin,
            nl_bsn,
            de_tax_id,
            fr_nir,
            swift_bic,
            us_dea,
        ];
        for f in all {
            for j in junk {
                let _ = f(j);
            }
        }
    }
}
