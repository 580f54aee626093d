//! Personal identifiers: US SSN, dates (of birth), phone numbers.

use super::{digits, verdict};
use crate::finding::Checksum;

/// US Social Security Number, SSA rules: area not 000, 666 or 900–999;
/// group not 00; serial not 0000; not a number the SSA has voided after
/// publication (078-05-1120, 219-09-9999) nor 123-45-6789.
pub fn us_ssn(s: &[u8]) -> Checksum {
    let d: Vec<u32> = digits(s).map(u32::from).collect();
    if d.len() != 9 {
        return Checksum::Invalid;
    }
    let area = d[0] * 100 + d[1] * 10 + d[2];
    let group = d[3] * 10 + d[4];
    let serial = d[5] * 1000 + d[6] * 100 + d[7] * 10 + d[8];
    let known_fake = matches!(
        (area, group, serial),
        (78, 5, 1120) | (219, 9, 9999) | (123, 45, 6789)
    );
    verdict(area != 0 && area != 666 && area < 900 && group != 0 && serial != 0 && !known_fake)
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn month_from_name(w: &[u8]) -> Option<u32> {
    if w.len() < 3 {
        return None;
    }
    let lw = w.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|m| lw.starts_with(m.as_bytes()))
        .map(|i| i as u32 + 1)
}

fn current_year() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    1970 + secs / 31_556_952
}

fn valid_ymd(y: i64, m: u32, d: u32) -> bool {
    if !(1900..=current_year()).contains(&y) || !(1..=12).contains(&m) || d == 0 {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    d <= days
}

fn year(tok: &[u8]) -> Option<i64> {
    let v: i64 = std::str::from_utf8(tok).ok()?.parse().ok()?;
    match tok.len() {
        4 => Some(v),
        // Two-digit years: the one that is not in the future.
        2 => Some(if 2000 + v <= current_year() {
            2000 + v
        } else {
            1900 + v
        }),
        _ => None,
    }
}

fn num(tok: &[u8]) -> Option<u32> {
    if tok.is_empty() || tok.len() > 2 {
        return None;
    }
    std::str::from_utf8(tok).ok()?.parse().ok()
}

/// A calendar date that exists and lies between 1900 and today: `YYYY-MM-DD`,
/// `DD/MM/YYYY` or `MM/DD/YYYY` (either reading), `DD.MM.YY`, `12 March 1985`,
/// `March 12, 1985`, with ordinal suffixes allowed.
pub fn date(s: &[u8]) -> Checksum {
    let toks: Vec<&[u8]> = s
        .split(|b| !b.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| {
            // "12th" -> "12"
            let n = t.iter().take_while(|b| b.is_ascii_digit()).count();
            if n > 0 && n < t.len() && matches!(&t[n..], b"st" | b"nd" | b"rd" | b"th") {
                &t[..n]
            } else {
                t
            }
        })
        .collect();
    if toks.len() != 3 {
        return Checksum::Invalid;
    }
    let ok = if let Some(i) = toks.iter().position(|t| !t[0].is_ascii_digit()) {
        let Some(m) = month_from_name(toks[i]) else {
            return Checksum::Invalid;
        };
        let rest: Vec<&[u8]> = toks
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, t)| *t)
            .collect();
        match (num(rest[0]), year(rest[1]), year(rest[0]), num(rest[1])) {
            (Some(d), Some(y), _, _) if rest[1].len() == 4 => valid_ymd(y, m, d),
            (_, _, Some(y), Some(d)) if rest[0].len() == 4 => valid_ymd(y, m, d),
            _ => false,
        }
    } else if toks[0].len() == 4 {
        match (year(toks[0]), num(toks[1]), num(toks[2])) {
            (Some(y), Some(m), Some(d)) => valid_ymd(y, m, d),
            _ => false,
        }
    } else {
        match (num(toks[0]), num(toks[1]), year(toks[2])) {
            (Some(a), Some(b), Some(y)) => valid_ymd(y, b, a) || valid_ymd(y, a, b),
            _ => false,
        }
    };
    verdict(ok)
}

/// Phone number: 7–15 digits (E.164 maximum), an international prefix that is
/// not `+0`, not one digit repeated.
pub fn phone(s: &[u8]) -> Checksum {
    let d: Vec<u8> = digits(s).collect();
    if !(7..=15).contains(&d.len()) || d.iter().all(|&x| x == d[0]) {
        return Checksum::Invalid;
    }
    let plus = s.iter().position(|&b| b == b'+');
    if plus.is_some() && d[0] == 0 {
        return Checksum::Invalid;
    }
    Checksum::Valid
}

#[cfg(test)]
mod tests {
    use super::*;
    use Checksum::*;

    #[test]
    fn ssn_rules() {
        for n in [
            "536-90-4399",
            "078-05-1121",
            "001-01-0001",
            "899 99 9999",
            "665123456",
        ] {
            assert_eq!(us_ssn(n.as_bytes()), Valid, "{n}");
        }
        for n in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "078-05-1120",
            "219-09-9999",
            "123-45-6789",
            "12-345-678",
        ] {
            assert_eq!(us_ssn(n.as_bytes()), Invalid, "{n}");
        }
    }

    #[test]
    fn dates() {
        for d in [
            "1985-03-12",
            "12/03/1985",
            "03/31/1985",
            "31.03.85",
            "12 March 1985",
            "March 12th, 1985",
            "29/02/2000",
            "Feb 1 1990",
        ] {
            assert_eq!(date(d.as_bytes()), Valid, "{d}");
        }
        for d in [
            "1985-13-12",
            "31/31/1985",
            "29/02/1900",
            "1850-01-01",
            "2999-01-01",
            "12 Foo 1985",
            "1.2.3",
        ] {
            assert_eq!(date(d.as_bytes()), Invalid, "{d}");
        }
    }

    #[test]
    fn phones() {
        for p in [
            "+1 415 555 0100",
            "(415) 555-0100",
            "020 7946 0958",
            "+49 30 901820",
        ] {
            assert_eq!(phone(p.as_bytes()), Valid, "{p}");
        }
        for p in [
            "+0 123 456 789",
            "555-5555",
            "12345",
            "1111111111",
            "+1 234 567 890 123 456 7",
        ] {
            assert_eq!(phone(p.as_bytes()), Invalid, "{p}");
        }
    }
}
