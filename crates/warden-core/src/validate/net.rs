//! Network identifiers: IP addresses, credentials in URLs.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::verdict;
use crate::finding::Checksum;

/// IPv4 dotted quad, as `std::net` parses it (no leading zeros, octets ≤ 255).
pub fn ipv4(s: &[u8]) -> Checksum {
    verdict(std::str::from_utf8(s).is_ok_and(|t| t.parse::<Ipv4Addr>().is_ok()))
}

/// IPv6 address, as `std::net` parses it; at least two colons and one hex
/// digit, so `::` alone and clock times are not addresses.
pub fn ipv6(s: &[u8]) -> Checksum {
    let colons = s.iter().filter(|&&b| b == b':').count();
    let ok = colons >= 2
        && s.iter().any(|b| b.is_ascii_hexdigit())
        && std::str::from_utf8(s).is_ok_and(|t| t.parse::<Ipv6Addr>().is_ok());
    verdict(ok)
}

/// IPv4 or IPv6.
pub fn ip_address(s: &[u8]) -> Checksum {
    if s.contains(&b':') {
        ipv6(s)
    } else {
        ipv4(s)
    }
}

/// `scheme://user:password@host`: a non-empty user and password, where the
/// password is not a template placeholder (`${VAR}`, `<password>`, `{{x}}`,
/// `****`).
pub fn url_credentials(s: &[u8]) -> Checksum {
    let Some(p) = memchr::memmem::find(s, b"://") else {
        return Checksum::Invalid;
    };
    let rest = &s[p + 3..];
    let Some(at) = rest.iter().rposition(|&b| b == b'@') else {
        return Checksum::Invalid;
    };
    let userinfo = &rest[..at];
    let Some(colon) = userinfo.iter().position(|&b| b == b':') else {
        return Checksum::Invalid;
    };
    let (user, pass) = (&userinfo[..colon], &userinfo[colon + 1..]);
    let placeholder = pass.iter().all(|&b| b == b'*' || b == b'x' || b == b'X')
        || matches!(pass.first(), Some(b'$' | b'<' | b'{' | b'%'));
    verdict(!user.is_empty() && !pass.is_empty() && !placeholder && at + 1 < rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Checksum::*;

    #[test]
    fn ips() {
        for a in [
            "192.168.1.10",
            "8.8.8.8",
            "2001:db8::1",
            "fe80::1ff:fe23:4567:890a",
            "::ffff:192.0.2.1",
        ] {
            assert_eq!(ip_address(a.as_bytes()), Valid, "{a}");
        }
        for a in [
            "256.1.1.1",
            "1.2.3",
            "01.2.3.4",
            "12:30:45",
            "::",
            "2001:db8:::1",
        ] {
            assert_eq!(ip_address(a.as_bytes()), Invalid, "{a}");
        }
    }

    #[test]
    fn url_creds() {
        for u in [
            "postgres://user:pass@host",
            "mysql://admin:s3cr3t!@db.internal:3306/app",
            "redis://:x@h",
        ] {
            let want = if u.starts_with("redis") {
                Invalid
            } else {
                Valid
            };
            assert_eq!(url_credentials(u.as_bytes()), want, "{u}");
        }
        for u in [
            "postgres://user:${PGPASS}@host",
            "https://u:****@h",
            "https://user@host",
            "postgres://u:<password>@h",
        ] {
            assert_eq!(url_credentials(u.as_bytes()), Invalid, "{u}");
        }
    }
}
