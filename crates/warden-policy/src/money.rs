//! Exact money: decimal parsing and ISO 4217 minor units. Never floats.

use std::str::FromStr;

use rust_decimal::Decimal;

/// ISO 4217 active codes and their minor-unit exponents (currencies with exponent 2 are
/// listed too, so an unknown code is refused rather than guessed).
const EXPONENTS: &[(&str, u32)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BOV", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHE", 2),
    ("CHF", 2),
    ("CHW", 2),
    ("CLF", 4),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("COU", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MXV", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("USN", 2),
    ("UYI", 0),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VED", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

/// The ISO 4217 minor-unit exponent of `code` (`JPY` → 0, `USD` → 2, `KWD` → 3), or
/// `None` for a code that is not an active ISO 4217 currency. Codes are upper case.
///
/// # Example
///
/// ```
/// assert_eq!(warden_policy::currency_exponent("KWD"), Some(3));
/// assert_eq!(warden_policy::currency_exponent("usd"), None);
/// ```
pub fn currency_exponent(code: &str) -> Option<u32> {
    EXPONENTS
        .binary_search_by(|(c, _)| c.cmp(&code))
        .ok()
        .map(|i| EXPONENTS[i].1)
}

/// Why an amount was refused. The message never repeats the offending value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// Not a plain decimal (`123`, `123.45`): signs, spaces, exponents, NaN, infinity…
    #[error("not a plain decimal amount (digits with an optional '.' and decimals; no sign, exponent, NaN or spaces)")]
    NotDecimal,
    /// Below zero.
    #[error("amount is negative")]
    Negative,
    /// Exactly zero.
    #[error("amount must be greater than zero")]
    Zero,
    /// More decimals than the currency has minor units.
    #[error("{currency} allows at most {exponent} decimal place(s)")]
    TooManyDecimals {
        /// The currency code.
        currency: String,
        /// Its ISO 4217 exponent.
        exponent: u32,
    },
    /// Not an ISO 4217 code.
    #[error("unknown currency (not an ISO 4217 code)")]
    UnknownCurrency,
    /// Too large to represent in minor units.
    #[error("amount is too large")]
    TooLarge,
}

/// Parses `text` as an amount in `currency` and returns integer minor units.
///
/// Accepts only `digits[.digits]`; refuses a sign, exponent notation, NaN/infinity,
/// whitespace, negative and zero amounts, and more decimals than the currency allows
/// (trailing zeros count: `"10.000"` USD is refused, as a model that writes three
/// decimals for dollars is confused about the currency).
///
/// # Example
///
/// ```
/// use warden_policy::{to_minor_units, MoneyError};
/// assert_eq!(to_minor_units("120.00", "USD"), Ok(12000));
/// assert_eq!(to_minor_units("5000", "JPY"), Ok(5000));
/// assert!(matches!(to_minor_units("5000.5", "JPY"), Err(MoneyError::TooManyDecimals { .. })));
/// assert_eq!(to_minor_units("1e3", "USD"), Err(MoneyError::NotDecimal));
/// ```
///
/// # Errors
///
/// A [`MoneyError`] naming what is wrong.
pub fn to_minor_units(text: &str, currency: &str) -> Result<i64, MoneyError> {
    let exponent = currency_exponent(currency).ok_or(MoneyError::UnknownCurrency)?;
    let digits = match text.strip_prefix('-') {
        Some(rest) if is_plain_decimal(rest) => return Err(MoneyError::Negative),
        _ => text,
    };
    if !is_plain_decimal(digits) {
        return Err(MoneyError::NotDecimal);
    }
    let decimals = digits.split_once('.').map_or(0, |(_, d)| d.len());
    if decimals > exponent as usize {
        return Err(MoneyError::TooManyDecimals {
            currency: currency.to_string(),
            exponent,
        });
    }
    let value = Decimal::from_str_exact(digits).map_err(|_| MoneyError::TooLarge)?;
    if value.is_zero() {
        return Err(MoneyError::Zero);
    }
    let scaled = value
        .checked_mul(Decimal::from(10i64.pow(exponent)))
        .ok_or(MoneyError::TooLarge)?;
    if !scaled.fract().is_zero() {
        return Err(MoneyError::TooManyDecimals {
            currency: currency.to_string(),
            exponent,
        });
    }
    i64::from_str(&scaled.trunc().normalize().to_string()).map_err(|_| MoneyError::TooLarge)
}

/// Formats minor units back as a decimal string in `currency` (`12000`, `USD` → `120.00`).
pub fn format_minor_units(minor: i64, currency: &str) -> String {
    let exponent = currency_exponent(currency).unwrap_or(0);
    let mut d = Decimal::from(minor);
    // set_scale only fails above 28 decimals, which no currency has.
    if d.set_scale(exponent).is_err() {
        return minor.to_string();
    }
    d.to_string()
}

fn is_plain_decimal(s: &str) -> bool {
    // 30 characters is far beyond any real amount and keeps Decimal parsing bounded.
    if s.is_empty() || s.len() > 30 {
        return false;
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(EXPONENTS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn exponents() {
        for (c, e) in [
            ("JPY", 0),
            ("USD", 2),
            ("KWD", 3),
            ("BHD", 3),
            ("EUR", 2),
            ("CLF", 4),
            ("KRW", 0),
        ] {
            assert_eq!(currency_exponent(c), Some(e), "{c}");
        }
        assert_eq!(currency_exponent("XXX"), None);
        assert_eq!(currency_exponent("usd"), None);
    }

    #[test]
    fn amounts() {
        let ok = [
            ("100.00", "USD", 10000),
            ("100", "USD", 10000),
            ("100.0", "USD", 10000),
            ("0.01", "USD", 1),
            ("5000", "JPY", 5000),
            ("1.234", "KWD", 1234),
            ("1234.56", "USD", 123456),
            ("007", "JPY", 7),
        ];
        for (t, c, m) in ok {
            assert_eq!(to_minor_units(t, c), Ok(m), "{t} {c}");
        }
        let bad: [(&str, &str, MoneyError); 17] = [
            (
                "10.005",
                "USD",
                MoneyError::TooManyDecimals {
                    currency: "USD".into(),
                    exponent: 2,
                },
            ),
            (
                "5000.5",
                "JPY",
                MoneyError::TooManyDecimals {
                    currency: "JPY".into(),
                    exponent: 0,
                },
            ),
            (
                "5000.0",
                "JPY",
                MoneyError::TooManyDecimals {
                    currency: "JPY".into(),
                    exponent: 0,
                },
            ),
            (
                "1.2345",
                "KWD",
                MoneyError::TooManyDecimals {
                    currency: "KWD".into(),
                    exponent: 3,
                },
            ),
            ("-1.00", "USD", MoneyError::Negative),
            ("0", "USD", MoneyError::Zero),
            ("0.00", "USD", MoneyError::Zero),
            ("1e3", "USD", MoneyError::NotDecimal),
            ("NaN", "USD", MoneyError::NotDecimal),
            ("inf", "USD", MoneyError::NotDecimal),
            ("+1", "USD", MoneyError::NotDecimal),
            (" 1", "USD", MoneyError::NotDecimal),
            (".5", "USD", MoneyError::NotDecimal),
            ("5.", "USD", MoneyError::NotDecimal),
            ("1,000.00", "USD", MoneyError::NotDecimal),
            ("1", "ABC", MoneyError::UnknownCurrency),
            ("99999999999999999999999", "USD", MoneyError::TooLarge),
        ];
        for (t, c, e) in bad {
            assert_eq!(to_minor_units(t, c), Err(e), "{t} {c}");
        }
    }

    #[test]
    fn format_round_trips() {
        assert_eq!(format_minor_units(12000, "USD"), "120.00");
        assert_eq!(format_minor_units(5000, "JPY"), "5000");
        assert_eq!(format_minor_units(1234, "KWD"), "1.234");
    }
}
