//! The agent protocol: every JSON body the server decodes from an agent
//! (enroll, heartbeat, result upload, move report), every answer the agent
//! decodes from the server, the identify reply a compliance sweep reads, and
//! the certificate pin an agent is told to trust.
//!
//! Bodies are decoded as the server's `Json` extractor does (serde_json over
//! the whole body, trailing whitespace only) after the same size limit.
//!
//! Properties:
//! - decode → encode → decode gives the same value, and encoding is stable;
//! - what the agent does next with a decoded message does not panic: a
//!   task's port list and target are parsed, an upload's ports become an
//!   observation;
//! - an accepted identify reply (written as an object) re-encodes no
//!   longer than it came, and the re-encoded line parses back the same;
//! - an accepted pin is exactly 64 hex digits (colons aside) and renders
//!   back to them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use vigil_core::{Observation, PortList, TargetSpec};
use vigil_proto::agent::{
    EnrollRequest, EnrollResponse, Heartbeat, HeartbeatResponse, MovedNotice, ResultUpload,
    ScanTask, UploadAck, MAX_BODY_BYTES,
};
use vigil_proto::identify::{IdentifyReply, MAX_REPLY_BYTES};
use vigil_proto::pin::CertPin;

fuzz_target!(|data: &[u8]| {
    // Agent → server.
    decode::<EnrollRequest>(data);
    decode::<Heartbeat>(data);
    decode::<MovedNotice>(data);
    if let Some(upload) = decode::<ResultUpload>(data) {
        let ports = upload.ports.iter().map(|p| (p.port, p.state)).collect();
        let obs = Observation::from_ports(ports);
        assert_eq!(obs.ports.len(), upload.ports.len());
    }
    // Server → agent.
    decode::<EnrollResponse>(data);
    decode::<UploadAck>(data);
    if let Some(hb) = decode::<HeartbeatResponse>(data) {
        hb.tasks.iter().for_each(run_task_parsing);
        if let Some(m) = &hb.move_to {
            check_pin(&m.pin);
        }
    }
    decode::<ScanTask>(data).as_ref().map(run_task_parsing);
    // Endpoint → compliance sweep.
    check_identify(data);
    if let Ok(text) = std::str::from_utf8(data) {
        check_pin(text);
    }
});

/// Decodes like the server, then checks the round trip.
fn decode<T>(body: &[u8]) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    if body.len() > MAX_BODY_BYTES {
        return None;
    }
    let value: T = serde_json::from_slice(body).ok()?;
    let json = serde_json::to_vec(&value).expect("encode");
    let back: T = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "{} re-encoded as {} does not decode: {e}",
            std::any::type_name::<T>(),
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(back, value, "{}", String::from_utf8_lossy(&json));
    assert_eq!(serde_json::to_vec(&back).expect("encode"), json);
    Some(value)
}

/// What the agent parses of a task before it scans.
fn run_task_parsing(task: &ScanTask) {
    if let Ok(list) = PortList::parse(&task.ports) {
        assert!(!list.is_empty());
    }
    let _ = task.target.parse::<TargetSpec>();
}

fn check_identify(reply: &[u8]) {
    let Ok(parsed) = IdentifyReply::parse(reply) else {
        return;
    };
    assert!(!parsed.agent_id.is_empty());
    // Re-encoding never grows a reply written as an object (no whitespace,
    // no unknown fields, the shortest escapes), so one that arrived as a
    // whole line with its newline also fits as re-encoded. (serde also
    // takes a struct as an array, `["id","server","version"]`, which
    // grows by the field names.)
    let first = reply.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = parsed.to_line();
    if first.trim_ascii_start().starts_with(b"{") {
        assert!(
            line.len() <= first.len() + 1,
            "{:?} grew to {:?}",
            String::from_utf8_lossy(first),
            String::from_utf8_lossy(&line)
        );
    }
    if line.len() <= MAX_REPLY_BYTES {
        assert_eq!(IdentifyReply::parse(&line).as_ref(), Ok(&parsed));
    }
}

fn check_pin(text: &str) {
    let Ok(pin) = text.parse::<CertPin>() else {
        return;
    };
    let shown = pin.to_string();
    assert_eq!(shown.parse::<CertPin>(), Ok(pin), "{shown}");
    let hex = shown.strip_prefix("sha256:").expect("prefix");
    let written: String = text
        .trim()
        .get(7..)
        .expect("an accepted pin has a prefix")
        .chars()
        .filter(|&c| c != ':')
        .collect();
    assert_eq!(
        written.to_ascii_lowercase(),
        hex,
        "pin {text:?} is read as {shown}"
    );
}
