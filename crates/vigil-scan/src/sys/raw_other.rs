//! No raw sockets here: the SYN engine is Linux's. Opening fails with
//! `Unsupported`, so `--syn` is refused and automatic choice keeps the
//! connect engine.

use super::{Received, SendError};
use crate::syn::SYN_LEN;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

pub(crate) struct RawSockets(());

pub(crate) fn permitted() -> bool {
    false
}

pub(crate) fn route(_dst: IpAddr) -> Result<IpAddr, SendError> {
    Err(SendError::Other(unsupported()))
}

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "SYN scans need Linux raw sockets",
    )
}

impl RawSockets {
    pub(crate) fn open(_v4: bool, _v6: bool) -> io::Result<RawSockets> {
        Err(unsupported())
    }

    pub(crate) fn our_port(&self, _v4: bool) -> u16 {
        0
    }

    pub(crate) fn send(
        &self,
        _probes: &[(IpAddr, [u8; SYN_LEN])],
    ) -> (usize, Vec<(usize, SendError)>) {
        (0, Vec::new())
    }

    pub(crate) fn wait(&self, _timeout: Duration) {}

    pub(crate) fn drain(
        &self,
        _buf: &mut [u8],
        _limit: usize,
        _on: impl FnMut(Received<'_>),
    ) -> usize {
        0
    }
}
