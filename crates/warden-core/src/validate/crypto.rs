//! Cryptocurrency addresses: Bitcoin (base58check, bech32/bech32m), Ethereum (EIP-55).

use sha3::{Digest, Keccak256};

use super::verdict;
use crate::finding::Checksum;

/// Bitcoin address: legacy P2PKH/P2SH in base58check (version byte 0x00 or
/// 0x05, 21-byte payload) or segwit bech32 (witness v0) / bech32m (v1+) with
/// the `bc` prefix.
pub fn btc_address(s: &[u8]) -> Checksum {
    if s.len() > 3 && s[..3].eq_ignore_ascii_case(b"bc1") {
        return verdict(bech32_ok(s));
    }
    if !(26..=35).contains(&s.len()) {
        return Checksum::Invalid;
    }
    let Ok(text) = std::str::from_utf8(s) else {
        return Checksum::Invalid;
    };
    match bs58::decode(text).with_check(None).into_vec() {
        Ok(v) => verdict(v.len() == 21 && (v[0] == 0x00 || v[0] == 0x05)),
        Err(_) => Checksum::Invalid,
    }
}

const BECH32_CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn bech32_polymod(values: impl Iterator<Item = u8>) -> u32 {
    const GEN: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
    let mut chk: u32 = 1;
    for v in values {
        let b = chk >> 25;
        chk = ((chk & 0x1ff_ffff) << 5) ^ v as u32;
        for (i, g) in GEN.iter().enumerate() {
            if (b >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

fn bech32_ok(s: &[u8]) -> bool {
    let lower = s.iter().all(|b| !b.is_ascii_uppercase());
    let upper = s.iter().all(|b| !b.is_ascii_lowercase());
    if !(lower || upper) || !(14..=90).contains(&s.len()) {
        return false;
    }
    let s = s.to_ascii_lowercase();
    let Some(sep) = s.iter().rposition(|&b| b == b'1') else {
        return false;
    };
    let (hrp, data) = (&s[..sep], &s[sep + 1..]);
    if hrp != b"bc" || data.len() < 6 {
        return false;
    }
    let Some(vals) = data
        .iter()
        .map(|c| BECH32_CHARSET.iter().position(|x| x == c).map(|p| p as u8))
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let expanded = hrp
        .iter()
        .map(|c| c >> 5)
        .chain([0])
        .chain(hrp.iter().map(|c| c & 31));
    let pm = bech32_polymod(expanded.chain(vals.iter().copied()));
    let witness_version = vals[0];
    match witness_version {
        0 => pm == 1,
        1..=16 => pm == 0x2bc8_30a3,
        _ => false,
    }
}

/// Ethereum address `0x` + 40 hex digits. Mixed case must carry a valid
/// EIP-55 checksum; all-lower or all-upper case has no checksum (`Unknown`).
pub fn eth_address(s: &[u8]) -> Checksum {
    if s.len() != 42 || !s.starts_with(b"0x") || !s[2..].iter().all(|b| b.is_ascii_hexdigit()) {
        return Checksum::Invalid;
    }
    let hex = &s[2..];
    let has_lower = hex.iter().any(|b| b.is_ascii_lowercase());
    let has_upper = hex.iter().any(|b| b.is_ascii_uppercase());
    if !(has_lower && has_upper) {
        return Checksum::Unknown;
    }
    let hash = Keccak256::digest(hex.to_ascii_lowercase());
    let ok = hex.iter().enumerate().all(|(i, &c)| {
        if !c.is_ascii_alphabetic() {
            return true;
        }
        let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0xf;
        (nibble >= 8) == c.is_ascii_uppercase()
    });
    verdict(ok)
}

/// Any supported wallet address (Bitcoin or Ethereum).
pub fn crypto_wallet(s: &[u8]) -> Checksum {
    if s.starts_with(b"0x") {
        eth_address(s)
    } else {
        btc_address(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Checksum::*;

    #[test]
    fn btc_vectors() {
        for a in [
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
            "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        ] {
            assert_eq!(btc_address(a.as_bytes()), Valid, "{a}");
        }
        for a in [
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb",
            "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLz",
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdr",
            "bc1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
            "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx",
        ] {
            assert_eq!(btc_address(a.as_bytes()), Invalid, "{a}");
        }
    }

    #[test]
    fn eip55_vectors() {
        // From EIP-55.
        for a in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            assert_eq!(eth_address(a.as_bytes()), Valid, "{a}");
        }
        for a in [
            "0x52908400098527886E0F7030069857D2E4169EE7",
            "0xde709f2102306220921060314715629080e2fb77",
        ] {
            assert_eq!(eth_address(a.as_bytes()), Unknown, "{a}");
        }
        for a in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe",
            "0xZaAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ] {
            assert_eq!(eth_address(a.as_bytes()), Invalid, "{a}");
        }
    }
}
