//! Payment cards, IBAN, US routing numbers.

use super::{digits, verdict};
use crate::finding::Checksum;

/// Luhn mod-10 over the digits of `s` (separators ignored); 12–19 digits.
pub fn luhn(s: &[u8]) -> Checksum {
    let n = digits(s).count();
    if !(12..=19).contains(&n) {
        return Checksum::Invalid;
    }
    verdict(luhn_ok(digits(s)))
}

fn luhn_ok(d: impl Iterator<Item = u8> + Clone) -> bool {
    let v: Vec<u8> = d.collect();
    let sum: u32 = v
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = x as u32;
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum % 10 == 0
}

/// Payment card: Luhn, plus a known issuer prefix with a length that issuer
/// uses, plus consistent separators (all spaces, all dashes or none), and not
/// a run of one repeated digit.
pub fn credit_card(s: &[u8]) -> Checksum {
    let seps: Vec<u8> = s.iter().copied().filter(|b| !b.is_ascii_digit()).collect();
    if seps.iter().any(|&b| b != b' ' && b != b'-')
        || (seps.contains(&b' ') && seps.contains(&b'-'))
    {
        return Checksum::Invalid;
    }
    let d: Vec<u8> = digits(s).collect();
    let len = d.len();
    if !(12..=19).contains(&len) || d.iter().all(|&x| x == d[0]) {
        return Checksum::Invalid;
    }
    let prefix = |k: usize| d.iter().take(k).fold(0u32, |a, &x| a * 10 + x as u32);
    let (p1, p2, p3, p4, p6) = (prefix(1), prefix(2), prefix(3), prefix(4), prefix(6));
    let issuer_ok = match () {
        // Visa
        _ if p1 == 4 => matches!(len, 13 | 16 | 19),
        // Mastercard (51–55 and the 2-series)
        _ if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) => len == 16,
        // American Express
        _ if p2 == 34 || p2 == 37 => len == 15,
        // Discover
        _ if p4 == 6011
            || (644..=649).contains(&p3)
            || p2 == 65
            || (622126..=622925).contains(&p6) =>
        {
            (16..=19).contains(&len)
        }
        // Diners Club
        _ if (300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39 => {
            (14..=19).contains(&len)
        }
        // JCB
        _ if (3528..=3589).contains(&p4) => (16..=19).contains(&len),
        // UnionPay
        _ if p2 == 62 || p2 == 81 => (16..=19).contains(&len),
        // Maestro
        _ if p2 == 50 || (56..=69).contains(&p2) => (12..=19).contains(&len),
        _ => false,
    };
    verdict(issuer_ok && luhn_ok(d.iter().copied()))
}

/// IBAN lengths per country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BI", 27),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DJ", 27),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FK", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MN", 20),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NI", 28),
    (b"NL", 18),
    (b"NO", 15),
    (b"OM", 23),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"RU", 33),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"SO", 23),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
    (b"YE", 30),
];

/// IBAN: known country, that country's length, ISO 7064 mod-97 == 1.
/// Spaces are ignored; letters may be either case.
pub fn iban(s: &[u8]) -> Checksum {
    let v: Vec<u8> = s
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if v.len() < 15 || !v.iter().all(|b| b.is_ascii_alphanumeric()) {
        return Checksum::Invalid;
    }
    let Some(&(_, want)) = IBAN_LENGTHS.iter().find(|(cc, _)| cc[..] == v[..2]) else {
        return Checksum::Invalid;
    };
    if v.len() != want || !v[2].is_ascii_digit() || !v[3].is_ascii_digit() {
        return Checksum::Invalid;
    }
    let mut rem: u32 = 0;
    for &b in v[4..].iter().chain(&v[..4]) {
        let n = if b.is_ascii_digit() {
            (b - b'0') as u32
        } else {
            (b - b'A') as u32 + 10
        };
        rem = if n >= 10 {
            (rem * 100 + n) % 97
        } else {
            (rem * 10 + n) % 97
        };
    }
    verdict(rem == 1)
}

/// ABA routing transit number: 9 digits, a Federal Reserve prefix
/// (00–12, 21–32, 61–72, 80) and the 3-7-1 weighted checksum.
pub fn aba_routing(s: &[u8]) -> Checksum {
    let d: Vec<u32> = digits(s).map(u32::from).collect();
    if d.len() != 9 {
        return Checksum::Invalid;
    }
    let prefix = d[0] * 10 + d[1];
    let prefix_ok = matches!(prefix, 0..=12 | 21..=32 | 61..=72 | 80);
    let sum = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8]);
    verdict(prefix_ok && sum % 10 == 0 && d.iter().any(|&x| x != 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Checksum::*;

    #[test]
    fn luhn_vectors() {
        // Published test card numbers (Stripe, PayPal/Braintree docs).
        for n in [
            "4242424242424242",
            "4111111111111111",
            "5555555555554444",
            "378282246310005",
            "6011111111111117",
            "3056930009020004",
            "3566002020360505",
            "6200000000000005",
            "79927398713",
            "2223003122003222",
        ] {
            let want = if n.len() < 12 { Invalid } else { Valid };
            assert_eq!(luhn(n.as_bytes()), want, "{n}");
        }
        assert_eq!(luhn(b"4242424242424241"), Invalid);
    }

    #[test]
    fn card_issuers_and_lengths() {
        for n in [
            "4242 4242 4242 4242",
            "4111-1111-1111-1111",
            "5555555555554444",
            "2223003122003222",
            "378282246310005",
            "3782 822463 10005",
            "6011111111111117",
            "3056930009020004",
            "3566002020360505",
            "6200000000000005",
        ] {
            assert_eq!(credit_card(n.as_bytes()), Valid, "{n}");
        }
        // Luhn-valid but no issuer / wrong length / mixed separators / repeated digit.
        for n in [
            "1234567812345670",
            "424242424242424242",
            "4242 4242-4242 4242",
            "0000000000000000",
            "37828224631000",
        ] {
            assert_eq!(credit_card(n.as_bytes()), Invalid, "{n}");
        }
    }

    #[test]
    fn iban_registry_examples() {
        for n in [
            "GB82 WEST 1234 5698 7654 32",
            "DE89370400440532013000",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "BE68539007547034",
            "CH9300762011623852957",
            "NO9386011117947",
            "es9121000418450200051332",
        ] {
            assert_eq!(iban(n.as_bytes()), Valid, "{n}");
        }
        for n in [
            "GB82WEST12345698765433",
            "DE8937040044053201300",
            "XX89370400440532013000",
            "GB82",
        ] {
            assert_eq!(iban(n.as_bytes()), Invalid, "{n}");
        }
    }

    #[test]
    fn aba_vectors() {
        for n in [
            "011000015",
            "021000021",
            "111000025",
            "026009593",
            "322271627",
        ] {
            assert_eq!(aba_routing(n.as_bytes()), Valid, "{n}");
        }
        for n in [
            "011000016",
            "123456789",
            "000000000",
            "991000015",
            "12345678",
        ] {
            assert_eq!(aba_routing(n.as_bytes()), Invalid, "{n}");
        }
    }
}
