//! UPnP control messages (UDA 1.1, section 3.2): the SOAP envelope of an
//! action call and the reading of its answer, which is either the action's
//! out-arguments or a `UPnPError` fault.

use std::collections::BTreeMap;

use quick_xml::escape::escape;

use super::xml;

/// UPnP error 713: the index given to `GetGenericPortMappingEntry` is past
/// the last mapping, i.e. the normal end of the list.
pub(super) const SPECIFIED_ARRAY_INDEX_INVALID: u32 = 713;

/// The body of a POST calling `action` of `service_type` with `args`.
pub(super) fn envelope(service_type: &str, action: &str, args: &[(&str, &str)]) -> String {
    let args: String = args
        .iter()
        .map(|(name, value)| format!("<{name}>{}</{name}>", escape(*value)))
        .collect();
    format!(
        "<?xml version=\"1.0\"?>\r\n\
         <s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\">\
         <s:Body><u:{action} xmlns:u=\"{}\">{args}</u:{action}></s:Body></s:Envelope>\r\n",
        escape(service_type)
    )
}

/// The `SOAPAction` header value: `"service#action"`, quotes included.
pub(super) fn soap_action(service_type: &str, action: &str) -> String {
    format!("\"{service_type}#{action}\"")
}

/// What a device answered to an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reply {
    /// The out-arguments of `<actionResponse>`, by name.
    Values(BTreeMap<String, String>),
    /// A SOAP fault, with the `UPnPError` code if one was given.
    Fault {
        code: Option<u32>,
        description: String,
    },
}

/// Reads the answer to `action`: `Envelope/Body/<action>Response/*` or
/// `Envelope/Body/Fault` (namespace prefixes ignored).
pub(super) fn parse_reply(doc: &str, action: &str) -> Result<Reply, String> {
    let response = format!("{action}Response");
    let mut values = BTreeMap::new();
    let mut saw_response = false;
    let mut saw_fault = false;
    let mut code_text: Option<String> = None;
    let mut description = String::new();
    let mut fault_string = String::new();
    xml::walk(doc, |path, text| {
        let names: Vec<&str> = path.iter().map(String::as_str).collect();
        match names.as_slice() {
            ["Envelope", "Body", r] if *r == response => saw_response = true,
            ["Envelope", "Body", r, arg] if *r == response => {
                values.insert(arg.to_string(), text.to_string());
            }
            ["Envelope", "Body", "Fault"] => saw_fault = true,
            ["Envelope", "Body", "Fault", "faultstring"] => fault_string = text.to_string(),
            ["Envelope", "Body", "Fault", "detail", "UPnPError", "errorCode"] => {
                code_text = Some(text.to_string());
            }
            ["Envelope", "Body", "Fault", "detail", "UPnPError", "errorDescription"] => {
                description = text.to_string();
            }
            _ => {}
        }
    })?;
    if saw_fault {
        let code = code_text.as_deref().and_then(|c| c.parse().ok());
        if description.is_empty() {
            description = fault_string;
        }
        return Ok(Reply::Fault { code, description });
    }
    if saw_response {
        return Ok(Reply::Values(values));
    }
    Err(format!("no {response} or Fault in the SOAP body"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WANIP2: &str = "urn:schemas-upnp-org:service:WANIPConnection:2";

    #[test]
    fn envelopes() {
        let body = envelope(
            WANIP2,
            "GetGenericPortMappingEntry",
            &[("NewPortMappingIndex", "3")],
        );
        assert!(body.contains(
            "<s:Body><u:GetGenericPortMappingEntry xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:2\">\
             <NewPortMappingIndex>3</NewPortMappingIndex></u:GetGenericPortMappingEntry></s:Body>"
        ));
        assert!(envelope(WANIP2, "A", &[("X", "<&>")]).contains("<X>&lt;&amp;&gt;</X>"));
        assert_eq!(
            soap_action(WANIP2, "GetExternalIPAddress"),
            "\"urn:schemas-upnp-org:service:WANIPConnection:2#GetExternalIPAddress\""
        );
        // Our own envelope is well-formed for our own reader.
        assert!(matches!(
            parse_reply(&body, "GetGenericPortMappingEntry"),
            Err(e) if e.contains("no GetGenericPortMappingEntryResponse")
        ));
    }

    #[test]
    fn miniupnpd_replies() {
        let ok = r#"<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:GetGenericPortMappingEntryResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><NewRemoteHost></NewRemoteHost><NewExternalPort>3389</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>3389</NewInternalPort><NewInternalClient>198.51.100.20</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>test rdp</NewPortMappingDescription><NewLeaseDuration>604786</NewLeaseDuration></u:GetGenericPortMappingEntryResponse></s:Body></s:Envelope>"#;
        let Reply::Values(v) = parse_reply(ok, "GetGenericPortMappingEntry").unwrap() else {
            panic!("not values");
        };
        assert_eq!(v.len(), 8);
        assert_eq!(v["NewRemoteHost"], "");
        assert_eq!(v["NewPortMappingDescription"], "test rdp");

        let fault = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>713</errorCode><errorDescription>SpecifiedArrayIndexInvalid</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>"#;
        assert_eq!(
            parse_reply(fault, "GetGenericPortMappingEntry").unwrap(),
            Reply::Fault {
                code: Some(SPECIFIED_ARRAY_INDEX_INVALID),
                description: "SpecifiedArrayIndexInvalid".into()
            }
        );
    }

    #[test]
    fn odd_and_hostile_replies() {
        // A fault without UPnPError detail.
        let bare =
            "<Envelope><Body><Fault><faultstring>Nope</faultstring></Fault></Body></Envelope>";
        assert_eq!(
            parse_reply(bare, "X").unwrap(),
            Reply::Fault {
                code: None,
                description: "Nope".into()
            }
        );
        // A non-numeric code is no code.
        let odd = "<Envelope><Body><Fault><detail><UPnPError><errorCode>7x</errorCode>\
                   </UPnPError></detail></Fault></Body></Envelope>";
        assert!(matches!(
            parse_reply(odd, "X").unwrap(),
            Reply::Fault { code: None, .. }
        ));
        // The answer to another action does not count.
        let other = "<Envelope><Body><YResponse><A>1</A></YResponse></Body></Envelope>";
        assert!(parse_reply(other, "X").is_err());
        for bad in ["", "<Envelope><Body>", "garbage", "<a>&xxe;</a>"] {
            assert!(parse_reply(bad, "X").is_err(), "{bad:?}");
        }
    }
}
