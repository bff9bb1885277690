//! One SYN engine shared by many scans (the server's scan service), on
//! loopback with raw sockets: one rate for all, fair shares per group,
//! a bounded number running, abandoned scans let go, scans spread over
//! the shards. The fairness tests run one shard (fair shares hold within
//! a shard).
#![cfg(target_os = "linux")]

use std::net::TcpListener;
use std::time::{Duration, Instant};
use vigil_core::{PortList, PortState};
use vigil_scan::{Method, ScanConfig, ScanService, Scanner, TargetSet, SERVICE_MAX_RUNNING};
use vigil_testnet::require_root;

async fn loopback() -> TargetSet {
    TargetSet::resolve(&["127.0.0.1".parse().unwrap()], Default::default())
        .await
        .unwrap()
}

fn scanner(service: &ScanService, group: u128) -> Scanner {
    Scanner::new(ScanConfig {
        method: Method::Syn,
        service: Some(service.share(group)),
        ..Default::default()
    })
    .expect("a SYN scanner on the shared engine")
}

/// Runs a scan to its end: (port, state) of every result, and when it ended.
async fn finish(mut scan: vigil_scan::Scan) -> (Vec<(u16, PortState)>, Instant) {
    let mut out = Vec::new();
    while let Some(r) = scan.next().await {
        out.push((r.port, r.state));
    }
    out.sort_unstable();
    (out, Instant::now())
}

/// Ports 1..=n plus the listeners' ports.
fn ports_with(n: u16, open: &[u16]) -> PortList {
    PortList::from_ports((1..=n).chain(open.iter().copied()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_share_one_rate_evenly() {
    if !require_root() {
        eprintln!("skipped: raw sockets need root");
        return;
    }
    const RATE: f64 = 20_000.0;
    const PORTS: u16 = 5_000;
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let open: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    let ports = ports_with(PORTS, &open);
    let service = ScanService::start_sharded(RATE, 1).expect("raw sockets as root");
    let started = Instant::now();
    // Group 1 runs six scans, group 2 one: each group gets half the rate.
    let mut many = Vec::new();
    for _ in 0..6 {
        let scan = scanner(&service, 1)
            .start(loopback().await, ports.clone())
            .unwrap();
        many.push(tokio::spawn(finish(scan)));
    }
    let one = scanner(&service, 2)
        .start(loopback().await, ports.clone())
        .unwrap();
    let (one, one_end) = finish(one).await;
    let mut many_ends = Vec::new();
    for m in many {
        let (results, end) = m.await.unwrap();
        assert_eq!(results, one, "every scan sees the same ports");
        many_ends.push(end);
    }
    assert_eq!(one.len(), ports.len());
    for (port, state) in &one {
        // Ours are open; any other open one is a listener of this host.
        let listening =
            open.contains(port) || std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok();
        let want = if listening {
            PortState::Open
        } else {
            PortState::Closed
        };
        assert_eq!(*state, want, "port {port}");
    }
    // Group 2 alone needs a seventh of the probes: at half the rate it ends
    // at about 2/7 of the whole run. Split per scan (a seventh each) all
    // seven would end together.
    let first_of_many = many_ends.iter().min().unwrap().duration_since(started);
    let one_took = one_end.duration_since(started);
    assert!(
        one_took.as_secs_f64() < 0.6 * first_of_many.as_secs_f64(),
        "the lone group's scan took {one_took:?}, the first of the other group's {first_of_many:?}"
    );
    // One rate for all: 7 × 5,003 probes cannot go out faster than RATE.
    let usage = service.usage();
    let whole = many_ends.iter().max().unwrap().duration_since(started);
    assert!(usage.probes_sent >= 7 * ports.len() as u64, "{usage:?}");
    let floor = usage.probes_sent as f64 / RATE - 0.05;
    assert!(
        whole.as_secs_f64() >= floor,
        "{} probes in {whole:?}: faster than {RATE}/s",
        usage.probes_sent
    );
    assert!(usage.answers >= usage.probes_sent / 2, "{usage:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_number_run_and_a_late_group_is_not_queued_behind_a_busy_one() {
    if !require_root() {
        eprintln!("skipped: raw sockets need root");
        return;
    }
    let service = ScanService::start_sharded(5_000.0, 1).expect("raw sockets as root");
    let ports = ports_with(200, &[]);
    let n = SERVICE_MAX_RUNNING + 8;
    let mut crowd = Vec::new();
    for _ in 0..n {
        let scan = scanner(&service, 1)
            .start(loopback().await, ports.clone())
            .unwrap();
        crowd.push(tokio::spawn(finish(scan)));
    }
    // Group 2's scan comes last: it starts before group 1's waiting ones
    // (see the unit test of the choice) and gets half the rate.
    let late = scanner(&service, 2)
        .start(loopback().await, ports.clone())
        .unwrap();
    let late = tokio::spawn(finish(late));
    let seen = async {
        loop {
            let u = service.usage();
            if u.running + u.waiting == n + 1 {
                return u;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let u = tokio::time::timeout(Duration::from_secs(5), seen)
        .await
        .expect("every scan taken");
    assert_eq!(u.running, SERVICE_MAX_RUNNING, "{u:?}");
    assert!(u.waiting > 0, "{u:?}");
    let (results, late_end) = late.await.unwrap();
    assert_eq!(results.len(), ports.len());
    let mut ends = Vec::new();
    for c in crowd {
        let (results, end) = c.await.unwrap();
        assert_eq!(results.len(), ports.len());
        ends.push(end);
    }
    ends.sort();
    // Scans start in order within a group, so the last eight of group 1
    // waited for a slot; group 2's did not wait behind them.
    assert!(
        late_end < ends[SERVICE_MAX_RUNNING],
        "group 2's scan waited behind group 1's queue"
    );
    let u = service.usage();
    assert_eq!((u.running, u.waiting), (0, 0), "{u:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_scan_is_let_go() {
    if !require_root() {
        eprintln!("skipped: raw sockets need root");
        return;
    }
    let service = ScanService::start(1_000.0).expect("raw sockets as root");
    let mut scan = scanner(&service, 7)
        .start(loopback().await, PortList::all())
        .unwrap();
    // Started: results come (slowly, at 1,000/s).
    tokio::time::timeout(Duration::from_secs(5), scan.next())
        .await
        .expect("a first result")
        .expect("not ended");
    assert_eq!(service.usage().running, 1);
    drop(scan);
    let gone = async {
        while service.usage().running > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(2), gone)
        .await
        .expect("the engine lets the dropped scan go");
    let sent = service.usage().probes_sent;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        service.usage().probes_sent,
        sent,
        "no probes after the drop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_spread_over_the_shards_and_the_rate_is_split() {
    if !require_root() {
        eprintln!("skipped: raw sockets need root");
        return;
    }
    const RATE: f64 = 20_000.0;
    let service = ScanService::start_sharded(RATE, 2).expect("raw sockets as root");
    assert_eq!(service.usage().shards, 2);
    let ports = ports_with(5_000, &[]);
    let started = Instant::now();
    let a = scanner(&service, 1)
        .start(loopback().await, ports.clone())
        .unwrap();
    let b = scanner(&service, 1)
        .start(loopback().await, ports.clone())
        .unwrap();
    let (a, b) = tokio::join!(finish(a), finish(b));
    let took = a.1.max(b.1).duration_since(started).as_secs_f64();
    assert_eq!(a.0, b.0);
    assert_eq!(a.0.len(), ports.len());
    // Each shard sends RATE/2: side by side, the two scans take 5,000 /
    // 10,000 s; on one shard they would take twice that.
    let alone = ports.len() as f64 / (RATE / 2.0);
    assert!(
        took < 1.5 * alone && took > 0.8 * alone,
        "two scans on two shards took {took:.2} s (one each: {alone:.2} s)"
    );
}
