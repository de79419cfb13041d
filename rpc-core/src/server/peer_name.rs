//! The caller name a client certificate carries: its subject's common name (CN), read from
//! the DER that the TLS layer has already verified against the configured client CA. The
//! reader takes only what it needs and checks every length, so odd input yields `None`.

/// The subject common name of a DER X.509 certificate, if it has one in a text form.
pub(crate) fn common_name(cert: &[u8]) -> Option<String> {
    let (_, certificate, _) = tlv(cert, 0x30)?;
    let (_, mut tbs, _) = tlv(certificate, 0x30)?;
    if tbs.first() == Some(&0xa0) {
        tbs = skip(tbs)?; // version
    }
    for _ in 0..4 {
        tbs = skip(tbs)?; // serial, signature algorithm, issuer, validity
    }
    let (_, mut subject, _) = tlv(tbs, 0x30)?;
    while !subject.is_empty() {
        let (_, set, rest) = tlv(subject, 0x31)?;
        subject = rest;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (_, attribute, rest) = tlv(attributes, 0x30)?;
            attributes = rest;
            let (_, oid, value) = tlv(attribute, 0x06)?;
            if oid == [0x55, 0x04, 0x03] {
                let (tag, text, _) = any_tlv(value)?;
                // UTF8String, PrintableString, IA5String.
                return matches!(tag, 0x0c | 0x13 | 0x16)
                    .then(|| String::from_utf8(text.to_vec()).ok())
                    .flatten()
                    .filter(|name| !name.is_empty());
            }
        }
    }
    None
}

/// One element with tag `tag`: `(tag, content, rest)`.
fn tlv(input: &[u8], tag: u8) -> Option<(u8, &[u8], &[u8])> {
    any_tlv(input).filter(|(found, _, _)| *found == tag)
}

/// Everything after the first element.
fn skip(input: &[u8]) -> Option<&[u8]> {
    any_tlv(input).map(|(_, _, rest)| rest)
}

/// The first element, whatever its tag (single-byte tags only, as certificates use).
fn any_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = usize::from(*input.get(1)?);
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let bytes = first & 0x7f;
        if bytes == 0 || bytes > 4 {
            return None;
        }
        let len = input
            .get(2..2 + bytes)?
            .iter()
            .fold(0usize, |len, b| (len << 8) | usize::from(*b));
        (len, 2 + bytes)
    };
    let end = header.checked_add(len)?;
    Some((tag, input.get(header..end)?, input.get(end..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_input_yields_none_without_panicking() {
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x02, 0x30, 0x00],
            &[0x30, 0x03, 0x30, 0x01],
        ] {
            assert_eq!(common_name(input), None);
        }
    }
}
