//! Reading a UPnP device description (the XML at an SSDP `LOCATION`): the
//! root device's name, `URLBase`, and the services of every embedded device,
//! of which the audit wants the WAN connection service.

use super::xml;

/// Connection services that hold port mappings, most preferred first.
pub(super) const CONNECTION_SERVICES: [&str; 3] = [
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
];

/// Services beyond this many are ignored (an IGD has about six).
const MAX_SERVICES: usize = 64;

/// What the audit needs from a device description.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Description {
    /// `<URLBase>` (UDA 1.0; relative URLs resolve against it, else against
    /// the description's own URL).
    pub url_base: Option<String>,
    /// The root device's `<friendlyName>`.
    pub friendly_name: Option<String>,
    /// Every service of the root device and its embedded devices.
    pub services: Vec<Service>,
}

/// One `<service>` entry.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Service {
    pub service_type: String,
    /// As written: relative or absolute, not yet checked.
    pub control_url: String,
}

impl Description {
    /// The service to list port mappings from, by [`CONNECTION_SERVICES`]
    /// preference (version numbers compared exactly: a `:3` is unknown).
    pub(super) fn connection_service(&self) -> Option<&Service> {
        CONNECTION_SERVICES.iter().find_map(|wanted| {
            self.services
                .iter()
                .find(|s| s.service_type == *wanted && !s.control_url.is_empty())
        })
    }
}

/// Parses a device description; see [`xml::walk`] for the bounds.
pub(super) fn parse(doc: &str) -> Result<Description, String> {
    let mut desc = Description::default();
    let mut current = Service::default();
    let mut root_seen = false;
    xml::walk(doc, |path, text| {
        let names: Vec<&str> = path.iter().map(String::as_str).collect();
        match names.as_slice() {
            ["root"] => root_seen = true,
            ["root", "URLBase"] if !text.is_empty() => desc.url_base = Some(text.to_string()),
            ["root", "device", "friendlyName"] if !text.is_empty() => {
                desc.friendly_name = Some(text.to_string());
            }
            [.., "service", "serviceType"] => current.service_type = text.to_string(),
            [.., "service", "controlURL"] => current.control_url = text.to_string(),
            [.., "serviceList", "service"] => {
                let service = std::mem::take(&mut current);
                if desc.services.len() < MAX_SERVICES {
                    desc.services.push(service);
                }
            }
            _ => {}
        }
    })?;
    if !root_seen {
        return Err("not a UPnP device description (no <root> element)".into());
    }
    Ok(desc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// miniupnpd 2.3.1's rootDesc.xml (IGD v2).
    pub(crate) const MINIUPNPD: &str = r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0" configId="1337"><specVersion><major>1</major><minor>1</minor></specVersion><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType><friendlyName>Vigil Test Router</friendlyName><manufacturer>Debian</manufacturer><UDN>uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b</UDN><serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><serviceId>urn:upnp-org:serviceId:L3Forwarding1</serviceId><SCPDURL>/L3F.xml</SCPDURL><controlURL>/ctl/L3F</controlURL><eventSubURL>/evt/L3F</eventSubURL></service></serviceList><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType><friendlyName>WANDevice</friendlyName><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType><serviceId>urn:upnp-org:serviceId:WANCommonIFC1</serviceId><SCPDURL>/WANCfg.xml</SCPDURL><controlURL>/ctl/CmnIfCfg</controlURL><eventSubURL>/evt/CmnIfCfg</eventSubURL></service></serviceList><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:2</deviceType><friendlyName>WANConnectionDevice</friendlyName><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><SCPDURL>/WANIPCn.xml</SCPDURL><controlURL>/ctl/IPConn</controlURL><eventSubURL>/evt/IPConn</eventSubURL></service><service><serviceType>urn:schemas-upnp-org:service:WANIPv6FirewallControl:1</serviceType><serviceId>urn:upnp-org:serviceId:WANIPv6Firewall1</serviceId><SCPDURL>/WANIP6FC.xml</SCPDURL><controlURL>/ctl/IP6FCtl</controlURL><eventSubURL>/evt/IP6FCtl</eventSubURL></service></serviceList></device></deviceList></device></deviceList><presentationURL>http://198.51.100.1/</presentationURL></device></root>"#;

    #[test]
    fn miniupnpd_description() {
        let d = parse(MINIUPNPD).unwrap();
        assert_eq!(d.friendly_name.as_deref(), Some("Vigil Test Router"));
        assert_eq!(d.url_base, None);
        assert_eq!(d.services.len(), 4);
        let s = d.connection_service().unwrap();
        assert_eq!(s.service_type, CONNECTION_SERVICES[0]);
        assert_eq!(s.control_url, "/ctl/IPConn");
    }

    #[test]
    fn igd_v1_with_url_base_and_ppp() {
        let d = parse(
            "<root><URLBase>http://198.51.100.1:5000/</URLBase><device><friendlyName>Box</friendlyName>\
             <serviceList><service><serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1</serviceType>\
             <controlURL>ppp</controlURL></service><service>\
             <serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>\
             <controlURL>ip</controlURL></service></serviceList></device></root>",
        )
        .unwrap();
        assert_eq!(d.url_base.as_deref(), Some("http://198.51.100.1:5000/"));
        assert_eq!(d.connection_service().unwrap().control_url, "ip");
    }

    #[test]
    fn descriptions_without_a_connection_service() {
        let d =
            parse("<root><device><friendlyName>Printer</friendlyName></device></root>").unwrap();
        assert_eq!(d.connection_service(), None);
        // A connection service without a control URL is useless.
        let d = parse(
            "<root><device><serviceList><service><serviceType>\
             urn:schemas-upnp-org:service:WANIPConnection:1</serviceType></service>\
             </serviceList></device></root>",
        )
        .unwrap();
        assert_eq!(d.connection_service(), None);
    }

    #[test]
    fn hostile_descriptions() {
        assert!(parse("<html><body>hi</body></html>").is_err());
        assert!(parse("<root><device>").is_err());
        let many = format!(
            "<root><device><serviceList>{}</serviceList></device></root>",
            "<service><serviceType>x</serviceType><controlURL>/c</controlURL></service>"
                .repeat(1000)
        );
        assert_eq!(parse(&many).unwrap().services.len(), MAX_SERVICES);
        let huge = format!("<root>{}</root>", "<a>b</a>".repeat(100_000));
        assert!(parse(&huge).is_err());
    }
}
