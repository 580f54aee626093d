//! Validators: checks that reject look-alikes after a pattern matched.
//!
//! A validator is a plain function from the matched bytes to a [`Checksum`].
//! Rules name their validator in the pack (`validator = "luhn"`); adding a new
//! national identifier means one TOML rule plus, at most, one function here
//! and one line in [`REGISTRY`].

mod crypto;
mod finance;
mod identity;
mod national;
mod net;
mod secret;

use crate::finding::Checksum;

pub use crypto::{btc_address, crypto_wallet, eth_address};
pub use finance::{aba_routing, credit_card, iban, luhn};
pub use identity::{date, phone, us_ssn};
pub use national::{
    au_abn, au_medicare, au_tfn, br_cnpj, br_cpf, ca_sin, de_tax_id, es_nif, fi_personal_id,
    fr_nir, in_aadhaar, in_pan, it_fiscal_code, nl_bsn, pl_pesel, sg_nric, swift_bic, uk_nhs,
    uk_nino, us_dea, us_itin,
};
pub use net::{ip_address, ipv4, ipv6, url_credentials};
pub use secret::{entropy, jwt, shannon_entropy};

/// A validator: matched bytes in, verdict out. Never panics.
pub type ValidatorFn = fn(&[u8]) -> Checksum;

/// Every validator by the name packs use for it.
pub const REGISTRY: &[(&str, ValidatorFn)] = &[
    ("luhn", luhn),
    ("credit_card", credit_card),
    ("iban", iban),
    ("aba_routing", aba_routing),
    ("us_ssn", us_ssn),
    ("date", date),
    ("phone", phone),
    ("btc_address", btc_address),
    ("eth_address", eth_address),
    ("crypto_wallet", crypto_wallet),
    ("ip_address", ip_address),
    ("ipv4", ipv4),
    ("ipv6", ipv6),
    ("url_credentials", url_credentials),
    ("jwt", jwt),
    ("entropy", entropy),
    ("uk_nhs", uk_nhs),
    ("uk_nino", uk_nino),
    ("in_aadhaar", in_aadhaar),
    ("in_pan", in_pan),
    ("br_cpf", br_cpf),
    ("br_cnpj", br_cnpj),
    ("es_nif", es_nif),
    ("it_fiscal_code", it_fiscal_code),
    ("pl_pesel", pl_pesel),
    ("sg_nric", sg_nric),
    ("au_abn", au_abn),
    ("au_tfn", au_tfn),
    ("au_medicare", au_medicare),
    ("fi_personal_id", fi_personal_id),
    ("us_itin", us_itin),
    ("ca_sin", ca_sin),
    ("nl_bsn", nl_bsn),
    ("de_tax_id", de_tax_id),
    ("fr_nir", fr_nir),
    ("swift_bic", swift_bic),
    ("us_dea", us_dea),
];

/// Look a validator up by name.
///
/// # Example
/// ```
/// use warden_core::{validate, Checksum};
/// let luhn = validate::by_name("luhn").unwrap();
/// assert_eq!(luhn(b"4111 1111 1111 1111"), Checksum::Valid);
/// assert_eq!(luhn(b"4111 1111 1111 1112"), Checksum::Invalid);
/// ```
pub fn by_name(name: &str) -> Option<ValidatorFn> {
    REGISTRY.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The ASCII digits of `s`, ignoring everything else (separators).
fn digits(s: &[u8]) -> impl Iterator<Item = u8> + Clone + '_ {
    s.iter().filter(|b| b.is_ascii_digit()).map(|b| b - b'0')
}

fn verdict(ok: bool) -> Checksum {
    if ok {
        Checksum::Valid
    } else {
        Checksum::Invalid
    }
}
