//! `vigil ctl devices`: the devices of an agent's location, found by its
//! local-network sweeps (with the REST API's filters), each device's
//! history, and the latest sweep itself.

use super::table::{ago, fields, now, or_dash, time, Table};
use super::{query, seg, Ctl};
use anyhow::Result;
use clap::Subcommand;
use serde::Deserialize;
use serde_json::Value;
use vigil_proto::api::{DeviceView, NetworkView};

#[derive(Debug, Subcommand)]
pub(super) enum DevicesCommand {
    /// The devices of the agent's location, by address.
    List {
        /// The agent's id.
        agent: String,
        /// Only devices the latest sweep saw.
        #[arg(long, conflicts_with = "gone")]
        present: bool,
        /// Only devices the latest sweep missed.
        #[arg(long)]
        gone: bool,
        /// Only devices whose vendor contains this (case-insensitive).
        #[arg(long)]
        vendor: Option<String>,
        /// Only new devices: joined after the location's first sweep and
        /// not approved yet.
        #[arg(long)]
        new: bool,
        /// Only devices nobody approved yet.
        #[arg(long, conflicts_with = "approved")]
        unreviewed: bool,
        /// Only approved devices.
        #[arg(long)]
        approved: bool,
        /// Only present devices with an open port their policy does not
        /// authorize.
        #[arg(long)]
        unauthorized: bool,
    },
    /// One device.
    Show {
        /// The agent's id.
        agent: String,
        /// The device's id.
        device: String,
    },
    /// A device's history, newest first: when it joined, moved to other
    /// addresses, left and returned.
    History {
        /// The agent's id.
        agent: String,
        /// The device's id.
        device: String,
        /// The newest this many events (server default: all kept, 100).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// The latest sweep: interfaces, networks swept and left out, the
    /// gateway's port forwards.
    Network {
        /// The agent's id.
        agent: String,
    },
    /// Approve a device: reviewed, its open ports now authorized (unless it
    /// has its own list or a kind).
    Approve {
        /// The agent's id.
        agent: String,
        /// The device's id.
        device: String,
    },
    /// Decide about a device.
    Set {
        /// The agent's id.
        agent: String,
        /// The device's id.
        device: String,
        /// What it is, e.g. printer ("none" clears it).
        #[arg(long)]
        kind: Option<String>,
        /// Its own authorized ports, e.g. 80,631 ("none" for none, "kind"
        /// for its kind's).
        #[arg(long)]
        authorized: Option<String>,
        /// Whether its disappearance alerts.
        #[arg(long)]
        monitored: Option<bool>,
    },
}

fn ports(d: &DeviceView) -> String {
    if d.open_ports.is_empty() {
        return "-".into();
    }
    let list: Vec<String> = d.open_ports.iter().map(u16::to_string).collect();
    list.join(",")
}

pub(super) fn devices_table(devices: &[DeviceView], now: i64) -> String {
    if devices.is_empty() {
        return "no devices\n".into();
    }
    let mut t = Table::new(&[
        "ADDRESS",
        "MAC",
        "VENDOR",
        "NAME",
        "OPEN PORTS",
        "SEEN",
        "ID",
    ]);
    for d in devices {
        let seen = if d.present {
            "now".to_string()
        } else {
            format!("gone, last {}", ago(d.last_seen, now))
        };
        t.row(vec![
            or_dash(d.address.as_ref()),
            or_dash(d.mac.as_ref()),
            or_dash(d.vendor.as_ref()),
            or_dash(d.name.as_ref()),
            ports(d),
            seen,
            d.id.clone(),
        ]);
    }
    t.render()
}

fn device_text(d: &DeviceView) -> String {
    fields(&[
        ("id", d.id.clone()),
        ("addresses", d.addresses.join(", ")),
        ("mac", or_dash(d.mac.as_ref())),
        ("vendor", or_dash(d.vendor.as_ref())),
        (
            "name",
            match (&d.name, &d.name_source) {
                (Some(n), Some(s)) => format!("{n} (from {s})"),
                (n, _) => or_dash(n.as_ref()),
            },
        ),
        ("open ports", ports(d)),
        ("present", d.present.to_string()),
        ("approved", d.approved.to_string()),
        ("kind", or_dash(d.kind.as_ref())),
        (
            "authorized",
            match &d.authorized {
                Some(a) if a.is_empty() => "none".into(),
                Some(a) => a.clone(),
                None => "its kind's".into(),
            },
        ),
        ("monitored", d.monitored.to_string()),
        ("first seen", time(d.first_seen)),
        ("last seen", time(d.last_seen)),
    ])
}

/// One entry of `GET …/devices/{device}/history`.
#[derive(Debug, Deserialize)]
struct DeviceEventView {
    at: i64,
    kind: String,
    detail: String,
}

#[derive(Debug, Deserialize)]
struct DeviceHistoryView {
    events: Vec<DeviceEventView>,
}

fn history_text(h: &DeviceHistoryView) -> String {
    if h.events.is_empty() {
        return "no changes recorded\n".into();
    }
    let mut t = Table::new(&["WHEN", "EVENT", "DETAIL"]);
    for e in &h.events {
        t.row(vec![time(e.at), e.kind.clone(), e.detail.clone()]);
    }
    t.render()
}

fn network_text(n: &NetworkView) -> String {
    let mut out = fields(&[
        ("swept", time(n.finished_at)),
        ("networks", n.swept.join(", ")),
        ("devices", format!("{} ({} present)", n.devices, n.present)),
    ]);
    let mut t = Table::new(&["INTERFACE", "KIND", "SUBNETS", "SWEPT"]);
    for i in &n.interfaces {
        t.row(vec![
            i.name.clone(),
            i.kind.clone(),
            i.subnets.join(", "),
            match &i.excluded {
                None => "yes".into(),
                Some(why) => format!("no: {why}"),
            },
        ]);
    }
    out.push('\n');
    out.push_str(&t.render());
    for s in &n.skipped {
        out.push_str(&format!("left out: {} ({})\n", s.network, s.reason));
    }
    if let Some(why) = &n.incomplete {
        out.push_str(&format!("incomplete: {why}\n"));
    }
    if let Some(g) = &n.gateway {
        out.push_str(&format!(
            "gateway: {} answered {}; external address {}\n",
            or_dash(g.gateway.as_ref()),
            if g.answered.is_empty() {
                "nothing".to_string()
            } else {
                g.answered.join(", ")
            },
            or_dash(g.external_address.as_ref())
        ));
        for f in &g.forwards {
            out.push_str(&format!(
                "  forwards {}/{} from outside to {}:{}{}{}\n",
                f.external_port,
                f.protocol,
                f.internal_client,
                f.internal_port,
                if f.description.is_empty() {
                    String::new()
                } else {
                    format!(" \"{}\"", f.description)
                },
                if f.enabled { "" } else { " (disabled)" }
            ));
        }
        for p in &g.problems {
            out.push_str(&format!("  problem: {p}\n"));
        }
    }
    out
}

impl Ctl {
    pub(super) async fn devices(&self, cmd: DevicesCommand) -> Result<()> {
        match cmd {
            DevicesCommand::List {
                agent,
                present,
                gone,
                vendor,
                new,
                unreviewed,
                approved,
                unauthorized,
            } => {
                let mut params = Vec::new();
                if present || gone {
                    params.push(("present", present.to_string()));
                }
                if let Some(v) = vendor {
                    params.push(("vendor", v));
                }
                if new {
                    params.push(("new", "true".to_string()));
                }
                if unreviewed || approved {
                    params.push(("approved", approved.to_string()));
                }
                if unauthorized {
                    params.push(("unauthorized", "true".to_string()));
                }
                let answer = self
                    .api
                    .get(&format!(
                        "/agents/{}/devices{}",
                        seg(&agent),
                        query(&params)
                    ))
                    .await?;
                self.show(answer, |d: Vec<DeviceView>| devices_table(&d, now()))
            }
            DevicesCommand::Show { agent, device } => {
                let answer = self
                    .api
                    .get(&format!("/agents/{}/devices/{}", seg(&agent), seg(&device)))
                    .await?;
                self.show(answer, |d: DeviceView| device_text(&d))
            }
            DevicesCommand::Approve { agent, device } => {
                let answer = self
                    .api
                    .post_empty(&format!(
                        "/agents/{}/devices/{}/approve",
                        seg(&agent),
                        seg(&device)
                    ))
                    .await?;
                self.show(answer, |d: DeviceView| device_text(&d))
            }
            DevicesCommand::Set {
                agent,
                device,
                kind,
                authorized,
                monitored,
            } => {
                let mut body = serde_json::Map::new();
                if let Some(k) = kind {
                    let v = if k == "none" {
                        Value::Null
                    } else {
                        Value::from(k)
                    };
                    body.insert("kind".into(), v);
                }
                if let Some(a) = authorized {
                    let v = match a.as_str() {
                        "kind" => Value::Null,
                        "none" => Value::from(""),
                        _ => Value::from(a),
                    };
                    body.insert("authorized".into(), v);
                }
                if let Some(m) = monitored {
                    body.insert("monitored".into(), Value::from(m));
                }
                if body.is_empty() {
                    return Err(super::usage(
                        "nothing to change: give --kind, --authorized or --monitored",
                    ));
                }
                let answer = self
                    .api
                    .patch(
                        &format!("/agents/{}/devices/{}", seg(&agent), seg(&device)),
                        &Value::Object(body),
                    )
                    .await?;
                self.show(answer, |d: DeviceView| device_text(&d))
            }
            DevicesCommand::History {
                agent,
                device,
                limit,
            } => {
                let params: Vec<(&str, String)> = limit
                    .map(|l| ("limit", l.to_string()))
                    .into_iter()
                    .collect();
                let answer = self
                    .api
                    .get(&format!(
                        "/agents/{}/devices/{}/history{}",
                        seg(&agent),
                        seg(&device),
                        query(&params)
                    ))
                    .await?;
                self.show(answer, |h: DeviceHistoryView| history_text(&h))
            }
            DevicesCommand::Network { agent } => {
                let answer = self
                    .api
                    .get(&format!("/agents/{}/network", seg(&agent)))
                    .await?;
                self.show(answer, |n: NetworkView| network_text(&n))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_what_is_gone() {
        let d = DeviceView {
            id: "d1".into(),
            mac: Some("00:1b:63:00:00:01".into()),
            vendor: Some("Apple, Inc.".into()),
            address: Some("198.51.100.10".into()),
            addresses: vec!["198.51.100.10".into()],
            name: None,
            name_source: None,
            first_seen: 0,
            last_seen: 1000,
            open_ports: vec![80, 631],
            present: false,
            approved: false,
            kind: None,
            authorized: None,
            monitored: false,
        };
        let out = devices_table(&[d], 4600);
        assert!(out.contains("80,631"), "{out}");
        assert!(out.contains("gone, last 1 h ago"), "{out}");
        assert!(out.contains("Apple, Inc."), "{out}");
        assert_eq!(devices_table(&[], 0), "no devices\n");
    }

    #[test]
    fn the_history_lists_each_change() {
        let h: DeviceHistoryView = serde_json::from_value(serde_json::json!({"events": [
            {"at": 3600, "kind": "moved", "from": ["198.51.100.10"], "to": ["198.51.100.77"],
             "detail": "moved from 198.51.100.10 to 198.51.100.77"},
            {"at": 0, "kind": "joined", "from": [], "to": [], "detail": "joined the network"},
        ]}))
        .unwrap();
        let out = history_text(&h);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(
            lines[1].contains("moved") && lines[1].contains("to 198.51.100.77"),
            "{out}"
        );
        assert!(lines[2].contains("joined the network"), "{out}");
        let none: DeviceHistoryView = serde_json::from_str(r#"{"events": []}"#).unwrap();
        assert_eq!(history_text(&none), "no changes recorded\n");
    }
}
