//! Computer objects and the LDIF that creates them (pure, unit-tested).
//!
//! Names are validated rather than escaped: test data never needs DN
//! special characters, and a strict check keeps the generated DNs obvious.

use crate::DirError;

/// `userAccountControl` bit: the account is disabled.
pub const UF_ACCOUNTDISABLE: u32 = 0x2;
/// `userAccountControl` bit: a workstation or member server account (what
/// `samba-tool computer add` and domain joins create).
pub const UF_WORKSTATION_TRUST_ACCOUNT: u32 = 0x1000;

/// A computer object to create with [`crate::SambaDc::add_computers`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Computer {
    /// `cn`, and `sAMAccountName` without the trailing `$`: 1–15 ASCII
    /// letters, digits, `-` or `_` (a NetBIOS computer name).
    pub name: String,
    /// OU path below the domain, outermost first, separated by `/`
    /// (`"Workstations/Berlin"` is `OU=Berlin,OU=Workstations,DC=…`);
    /// missing OUs are created. `None`: the default `CN=Computers`
    /// container.
    pub ou: Option<String>,
    /// `dNSHostName`; `None` leaves it unset, like a pre-staged account.
    pub dns_host_name: Option<String>,
    /// `operatingSystem`; `None` leaves it unset.
    pub operating_system: Option<String>,
    /// Sets [`UF_ACCOUNTDISABLE`] in `userAccountControl`.
    pub disabled: bool,
}

impl Computer {
    /// An enabled computer in `CN=Computers` with no optional attributes.
    pub fn new(name: impl Into<String>) -> Computer {
        Computer {
            name: name.into(),
            ..Computer::default()
        }
    }

    /// Its `userAccountControl` value.
    pub fn user_account_control(&self) -> u32 {
        let disabled = if self.disabled { UF_ACCOUNTDISABLE } else { 0 };
        UF_WORKSTATION_TRUST_ACCOUNT | disabled
    }
}

/// The DN of the container that holds `computer`.
pub(crate) fn container_dn(base_dn: &str, ou: Option<&str>) -> Result<String, DirError> {
    match ou {
        None => Ok(format!("CN=Computers,{base_dn}")),
        Some(path) => Ok(ou_chain(base_dn, path)?
            .pop()
            .expect("ou_chain never returns an empty list")),
    }
}

/// The DNs of every OU on `path`, outermost first.
fn ou_chain(base_dn: &str, path: &str) -> Result<Vec<String>, DirError> {
    let mut dn = base_dn.to_string();
    let mut chain = Vec::new();
    for part in path.split('/') {
        check_ou_component(path, part)?;
        dn = format!("OU={part},{dn}");
        chain.push(dn.clone());
    }
    Ok(chain)
}

fn check_ou_component(path: &str, part: &str) -> Result<(), DirError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.');
    if part.is_empty()
        || part.len() > 64
        || part.starts_with(' ')
        || part.ends_with(' ')
        || !part.chars().all(ok_char)
    {
        return Err(DirError::InvalidInput(format!(
            "OU path {path:?}: each `/`-separated part must be 1-64 ASCII letters, digits, \
             spaces (not at either end), `-`, `_` or `.`"
        )));
    }
    Ok(())
}

pub(crate) fn check_name(name: &str) -> Result<(), DirError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
    if name.is_empty() || name.len() > 15 || !name.chars().all(ok_char) {
        return Err(DirError::InvalidInput(format!(
            "computer name {name:?} must be 1-15 ASCII letters, digits, `-` or `_`"
        )));
    }
    Ok(())
}

/// One LDIF document that creates the missing OUs (parent first, each
/// once; the loader skips those that already exist) and then `computers`.
pub(crate) fn to_ldif(base_dn: &str, computers: &[Computer]) -> Result<String, DirError> {
    let mut out = String::with_capacity(computers.len() * 200);
    let mut seen_ous = std::collections::HashSet::new();
    for c in computers {
        if let Some(path) = &c.ou {
            for dn in ou_chain(base_dn, path)? {
                if seen_ous.insert(dn.clone()) {
                    out.push_str(&format!("dn: {dn}\nobjectClass: organizationalUnit\n\n"));
                }
            }
        }
    }
    for c in computers {
        check_name(&c.name)?;
        let container = container_dn(base_dn, c.ou.as_deref())?;
        out.push_str(&format!("dn: CN={},{container}\n", c.name));
        out.push_str("objectClass: computer\n");
        out.push_str(&format!("cn: {}\n", c.name));
        out.push_str(&format!("sAMAccountName: {}$\n", c.name));
        out.push_str(&format!(
            "userAccountControl: {}\n",
            c.user_account_control()
        ));
        if let Some(v) = &c.dns_host_name {
            out.push_str(&attr_line("dNSHostName", v)?);
        }
        if let Some(v) = &c.operating_system {
            out.push_str(&attr_line("operatingSystem", v)?);
        }
        out.push('\n');
    }
    Ok(out)
}

/// `attr: value`, or `attr:: base64` when the value is not an LDIF
/// SAFE-STRING (RFC 2849) or ends with a space.
fn attr_line(attr: &str, value: &str) -> Result<String, DirError> {
    if value.is_empty() {
        return Err(DirError::InvalidInput(format!(
            "{attr} must not be empty (use None to leave it unset)"
        )));
    }
    let safe = value
        .bytes()
        .all(|b| b != 0 && b != b'\n' && b != b'\r' && b < 0x80)
        && !value.starts_with([' ', ':', '<'])
        && !value.ends_with(' ');
    Ok(if safe {
        format!("{attr}: {value}\n")
    } else {
        format!("{attr}:: {}\n", base64(value.as_bytes()))
    })
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "DC=example,DC=test";

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn containers() {
        let cases = [
            (None, "CN=Computers,DC=example,DC=test"),
            (Some("Servers"), "OU=Servers,DC=example,DC=test"),
            (Some("A/B c"), "OU=B c,OU=A,DC=example,DC=test"),
        ];
        for (ou, want) in cases {
            assert_eq!(container_dn(BASE, ou).unwrap(), want, "{ou:?}");
        }
        for bad in ["", "A//B", " A", "A,B", "A=B", "A\\B", "A+B"] {
            assert!(container_dn(BASE, Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names() {
        for ok in ["PC1", "WS-0001", "a_b", "ABCDEFGHIJKLMNO"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "ABCDEFGHIJKLMNOP", "pc$", "a b", "a,b", "ä"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ldif_for_three_kinds_of_computer() {
        let computers = [
            Computer {
                dns_host_name: Some("pc1.example.test".into()),
                operating_system: Some("Windows 11 Pro".into()),
                ..Computer::new("PC1")
            },
            Computer {
                ou: Some("Servers/Berlin".into()),
                disabled: true,
                operating_system: Some(" leading space".into()),
                ..Computer::new("SRV1")
            },
            Computer {
                ou: Some("Servers".into()),
                ..Computer::new("SRV2")
            },
        ];
        let want = "\
dn: OU=Servers,DC=example,DC=test
objectClass: organizationalUnit

dn: OU=Berlin,OU=Servers,DC=example,DC=test
objectClass: organizationalUnit

dn: CN=PC1,CN=Computers,DC=example,DC=test
objectClass: computer
cn: PC1
sAMAccountName: PC1$
userAccountControl: 4096
dNSHostName: pc1.example.test
operatingSystem: Windows 11 Pro

dn: CN=SRV1,OU=Berlin,OU=Servers,DC=example,DC=test
objectClass: computer
cn: SRV1
sAMAccountName: SRV1$
userAccountControl: 4098
operatingSystem:: IGxlYWRpbmcgc3BhY2U=

dn: CN=SRV2,OU=Servers,DC=example,DC=test
objectClass: computer
cn: SRV2
sAMAccountName: SRV2$
userAccountControl: 4096

";
        assert_eq!(to_ldif(BASE, &computers).unwrap(), want);
    }

    #[test]
    fn ldif_rejects_bad_input() {
        let bad = [
            Computer::new("bad name"),
            Computer {
                dns_host_name: Some(String::new()),
                ..Computer::new("PC1")
            },
            Computer {
                ou: Some("A,B".into()),
                ..Computer::new("PC1")
            },
        ];
        for c in bad {
            assert!(to_ldif(BASE, std::slice::from_ref(&c)).is_err(), "{c:?}");
        }
    }

    #[test]
    fn user_account_control() {
        assert_eq!(Computer::new("A").user_account_control(), 0x1000);
        let disabled = Computer {
            disabled: true,
            ..Computer::new("A")
        };
        assert_eq!(disabled.user_account_control(), 0x1002);
    }
}
