//! The little XML reading the gateway audit needs: every element's own text
//! with the path of local names leading to it, from a document a LAN device
//! sent us — so it is bounded in depth, element count and text size, and
//! knows no entities beyond XML's five (quick-xml never expands a DTD).

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, Event};

/// Deeper documents are refused (an IGD description nests about 8 levels).
const MAX_DEPTH: usize = 32;
/// Documents with more elements are refused.
const MAX_ELEMENTS: usize = 20_000;
/// An element's text beyond this many bytes is refused.
const MAX_TEXT: usize = 8 * 1024;

/// Calls `on_close(path, text)` each time an element closes: `path` holds the
/// local names (namespace prefixes dropped) from the root down to that
/// element, `text` its own character data (not its children's), unescaped
/// and trimmed. Errors say what is wrong with the document.
pub(super) fn walk(xml: &str, mut on_close: impl FnMut(&[String], &str)) -> Result<(), String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let config = reader.config_mut();
    config.expand_empty_elements = true;
    config.check_end_names = true;
    // (name, text) per open element.
    let mut stack: Vec<(String, String)> = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut elements = 0usize;
    loop {
        let at = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| format!("malformed XML at byte {at}: {e}"))?;
        match event {
            Event::Start(e) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(format!("more than {MAX_ELEMENTS} elements"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("elements nested deeper than {MAX_DEPTH}"));
                }
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                path.push(name.clone());
                stack.push((name, String::new()));
            }
            Event::End(_) => {
                // check_end_names guarantees a matching open element.
                let Some((_, text)) = stack.pop() else {
                    return Err("closing tag without an opening one".into());
                };
                on_close(&path, text.trim());
                path.pop();
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| format!("undecodable text: {e}"))?;
                push_text(&mut stack, &text)?;
            }
            Event::CData(t) => {
                let text = t.decode().map_err(|e| format!("undecodable CDATA: {e}"))?;
                push_text(&mut stack, &text)?;
            }
            Event::GeneralRef(r) => {
                let resolved = resolve_ref(&r)?;
                push_text(&mut stack, &resolved)?;
            }
            Event::Eof => break,
            // expand_empty_elements turns <a/> into Start and End.
            Event::Empty(_) => {}
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if let Some((name, _)) = stack.last() {
        return Err(format!("document ends inside <{name}>"));
    }
    if elements == 0 {
        return Err("no XML elements".into());
    }
    Ok(())
}

/// Appends text to the innermost open element (text outside the root is
/// whitespace or garbage and is dropped).
fn push_text(stack: &mut [(String, String)], text: &str) -> Result<(), String> {
    if let Some((name, buf)) = stack.last_mut() {
        if buf.len() + text.len() > MAX_TEXT {
            return Err(format!("text of <{name}> is longer than {MAX_TEXT} bytes"));
        }
        buf.push_str(text);
    }
    Ok(())
}

/// `&lt;` and friends, `&#38;`/`&#x26;`; anything else is an error (we
/// never read a DTD, so no other entity can be defined).
fn resolve_ref(r: &BytesRef<'_>) -> Result<String, String> {
    if let Some(c) = r
        .resolve_char_ref()
        .map_err(|e| format!("bad character reference: {e}"))?
    {
        return Ok(c.to_string());
    }
    let name = r
        .decode()
        .map_err(|e| format!("undecodable entity name: {e}"))?;
    resolve_predefined_entity(&name)
        .map(str::to_string)
        .ok_or_else(|| format!("unknown entity &{name};"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(xml: &str) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        walk(xml, |path, text| {
            out.push((path.join("/"), text.to_string()))
        })?;
        Ok(out)
    }

    #[test]
    fn paths_and_texts() {
        let got = collect(
            r#"<?xml version="1.0"?><s:a xmlns:s="x"><s:b> x &amp; y&#33; </s:b><c/><d><![CDATA[<z>]]></d></s:a>"#,
        )
        .unwrap();
        assert_eq!(
            got,
            [
                ("a/b".to_string(), "x & y!".to_string()),
                ("a/c".into(), "".into()),
                ("a/d".into(), "<z>".into()),
                ("a".into(), "".into()),
            ]
        );
    }

    #[test]
    fn hostile_documents_are_refused() {
        for bad in [
            "",
            "not xml at all",
            "<a><b></a>",
            "<a>",
            "<a>&foo;</a>",
            "<a>&#xFFFFFFFF;</a>",
            "<!DOCTYPE a [<!ENTITY e 'boom'>]><a>&e;</a>",
        ] {
            assert!(collect(bad).is_err(), "{bad:?} was accepted");
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(collect(&deep).unwrap_err().contains("deeper"));
        let many = format!("<r>{}</r>", "<a/>".repeat(MAX_ELEMENTS + 1));
        assert!(collect(&many).unwrap_err().contains("elements"));
        let long = format!("<r>{}</r>", "x".repeat(MAX_TEXT + 1));
        assert!(collect(&long).unwrap_err().contains("longer"));
        // Billion laughs: no DTD entity is ever expanded.
        let laughs = "<!DOCTYPE l [<!ENTITY a \"haha\"><!ENTITY b \"&a;&a;&a;&a;\">]><l>&b;</l>";
        assert!(collect(laughs).unwrap_err().contains("unknown entity"));
    }
}
