//! Running one scan task with `vigil-scan` and turning it into uploads.

use crate::describe::{self, DescribeConfig};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use vigil_core::listener::PortDetails;
use vigil_core::targets::AddrRange;
use vigil_core::{PortList, PortState, TargetSpec};
use vigil_proto::agent::{PortObservation, ResultUpload, ScanTask, SELF_TARGET};
use vigil_scan::services::ServiceNames;
use vigil_scan::{BannerConfig, Family, ScanConfig, Scanner, TargetSet};

/// How many open ports of one scan are described at once.
const DESCRIBE_AT_ONCE: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("task {task}: invalid ports {ports:?}: {reason}")]
    Ports {
        task: String,
        ports: String,
        reason: String,
    },
    #[error("task {task}: invalid target {target:?}: {reason}")]
    Target {
        task: String,
        target: String,
        reason: String,
    },
}

/// The address "self" stands for: the one this host uses to reach `peer`
/// (the server), found without sending a packet (a connected UDP socket
/// only picks a route). Scanning it shows what the network sees, unlike
/// 127.0.0.1, where loopback-only services would look exposed.
pub fn own_address(peer: IpAddr) -> Option<IpAddr> {
    let bind: IpAddr = if peer.is_ipv4() {
        IpAddr::from([0, 0, 0, 0])
    } else {
        IpAddr::from([0u16; 8])
    };
    let sock = std::net::UdpSocket::bind((bind, 0)).ok()?;
    sock.connect((peer, 9)).ok()?;
    sock.local_addr().ok().map(|a| a.ip())
}

/// Scans the task's target and returns one upload per scanned address.
/// `self_addr` is what [`SELF_TARGET`] means on this host.
pub async fn run(
    task: &ScanTask,
    self_addr: IpAddr,
    mut cfg: ScanConfig,
) -> Result<Vec<ResultUpload>, TaskError> {
    // What a service says first is part of what describes its port.
    cfg.banner.get_or_insert_with(BannerConfig::default);
    let ports = PortList::parse(&task.ports).map_err(|e| TaskError::Ports {
        task: task.task_id.clone(),
        ports: task.ports.clone(),
        reason: e.to_string(),
    })?;
    let target_err = |reason: String| TaskError::Target {
        task: task.task_id.clone(),
        target: task.target.clone(),
        reason,
    };
    let spec: TargetSpec = if task.target == SELF_TARGET {
        TargetSpec::Range(AddrRange::single(self_addr))
    } else {
        task.target
            .parse()
            .map_err(|e| target_err(format!("{e}")))?
    };
    let started_at = unix_now();
    // A name that does not resolve now is reported as an unreachable target,
    // not as a failed task: the DNS outage is what the user needs to see.
    let targets = match TargetSet::resolve(&[spec], Family::Any).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(task = %task.task_id, error = %e, "target did not resolve");
            return Ok(vec![upload(task, "", started_at, Vec::new())]);
        }
    };
    let scanner = Scanner::new(cfg).map_err(|e| target_err(e.to_string()))?;
    let mut scan = scanner
        .start(targets.clone(), ports)
        .map_err(|e| target_err(e.to_string()))?;
    let mut by_addr: BTreeMap<IpAddr, Vec<PortObservation>> =
        targets.iter().map(|a| (a, Vec::new())).collect();
    let mut banners: HashMap<(IpAddr, u16), Vec<u8>> = HashMap::new();
    while let Some(r) = scan.next().await {
        if let (PortState::Open, Some(b)) = (r.state, r.banner) {
            banners.insert((r.addr, r.port), b);
        }
        by_addr.entry(r.addr).or_default().push(PortObservation {
            port: r.port,
            state: r.state,
            details: None,
        });
    }
    let own_host = task.target == SELF_TARGET;
    let mut uploads = Vec::new();
    for (addr, mut ports) in by_addr {
        ports.sort_by_key(|p| p.port);
        describe_open(addr, &mut ports, &mut banners, own_host).await;
        uploads.push(upload(task, &addr.to_string(), started_at, ports));
    }
    Ok(uploads)
}

/// The service names of this host's tables, read once.
fn service_names() -> &'static ServiceNames {
    static NAMES: OnceLock<ServiceNames> = OnceLock::new();
    NAMES.get_or_init(ServiceNames::load)
}

/// Fills in what listens on each open port of `addr`: the service name,
/// what the service announces and, when `addr` is this host (`own_host`),
/// the listening process (one attribution pass, only if a port is open).
async fn describe_open(
    addr: IpAddr,
    ports: &mut [PortObservation],
    banners: &mut HashMap<(IpAddr, u16), Vec<u8>>,
    own_host: bool,
) {
    let open: Vec<u16> = ports
        .iter()
        .filter(|p| p.state == PortState::Open)
        .map(|p| p.port)
        .collect();
    if open.is_empty() {
        return;
    }
    let mut processes = BTreeMap::new();
    if own_host {
        let wanted = open.clone();
        match tokio::task::spawn_blocking(move || crate::listeners::attribute(addr, &wanted)).await
        {
            Ok(Ok(found)) => processes = found,
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot tell which processes listen"),
            Err(e) => tracing::warn!(error = %e, "process attribution failed"),
        }
    }
    let permits = Arc::new(tokio::sync::Semaphore::new(DESCRIBE_AT_ONCE));
    let mut probes = tokio::task::JoinSet::new();
    for &port in &open {
        let banner = banners.remove(&(addr, port));
        let permits = permits.clone();
        probes.spawn(async move {
            let _permit = permits.acquire_owned().await.ok();
            let target = SocketAddr::new(addr, port);
            let details = describe::describe(target, banner.as_deref(), DescribeConfig::default());
            (port, details.await)
        });
    }
    let mut described: HashMap<u16, PortDetails> = HashMap::new();
    while let Some(done) = probes.join_next().await {
        if let Ok((port, details)) = done {
            described.insert(port, details);
        }
    }
    for p in ports.iter_mut().filter(|p| p.state == PortState::Open) {
        let mut details = described.remove(&p.port).unwrap_or_default();
        details.service = service_names().get(p.port).map(str::to_string);
        details.process = processes.remove(&p.port);
        p.details = (!details.is_empty()).then(|| Box::new(details));
    }
}

fn upload(
    task: &ScanTask,
    addr: &str,
    started_at: i64,
    ports: Vec<PortObservation>,
) -> ResultUpload {
    ResultUpload {
        upload_id: new_upload_id(),
        task_id: task.task_id.clone(),
        target: task.target.clone(),
        addr: addr.to_string(),
        started_at,
        finished_at: unix_now(),
        ports,
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A random 128-bit id (hex): unique per finished scan, so the server can
/// store each upload exactly once however often it is re-sent.
fn new_upload_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scans_loopback_and_reports_every_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let open = listener.local_addr().expect("addr").port();
        let task = ScanTask {
            task_id: "t1".into(),
            target: SELF_TARGET.into(),
            ports: format!("{open},1"),
            network: None,
        };
        let self_addr: IpAddr = "127.0.0.1".parse().expect("ip");
        let uploads = run(&task, self_addr, ScanConfig::default())
            .await
            .expect("run");
        assert_eq!(uploads.len(), 1);
        let u = &uploads[0];
        assert_eq!(u.addr, "127.0.0.1");
        assert_eq!(u.target, "self");
        let states: Vec<(u16, PortState)> = u.ports.iter().map(|p| (p.port, p.state)).collect();
        let mut expected = vec![(1, PortState::Closed), (open, PortState::Open)];
        expected.sort();
        assert_eq!(states, expected);
        assert_ne!(
            uploads[0].upload_id,
            run(&task, self_addr, ScanConfig::default())
                .await
                .expect("run")[0]
                .upload_id
        );
    }

    #[tokio::test]
    async fn bad_ports_are_a_task_error() {
        let task = ScanTask {
            task_id: "t1".into(),
            target: "127.0.0.1".into(),
            ports: "99999".into(),
            network: None,
        };
        let err = run(
            &task,
            "127.0.0.1".parse().expect("ip"),
            ScanConfig::default(),
        )
        .await
        .expect_err("bad ports");
        assert!(err.to_string().contains("99999"), "{err}");
    }

    #[test]
    fn own_address_of_loopback_is_loopback() {
        let peer: IpAddr = "127.0.0.1".parse().expect("ip");
        assert_eq!(own_address(peer), Some(peer));
    }
}
