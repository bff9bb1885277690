//! Sizing concurrency from the process's open-file limit.

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Sockets kept for the rest of the process (stdio, output files, resolver, runtime).
const RESERVED_FDS: u64 = 128;
/// Above this, more parallel connects stop paying off: the kernel's ephemeral
/// port range (28k by default) and the CPU become the limit.
const MAX_AUTO_CONCURRENCY: u64 = 10_000;

/// Concurrency to use when the user gave none: the open-file limit (after
/// raising it) less a reserve, capped.
pub fn auto_concurrency() -> usize {
    concurrency_for_limit(raise_nofile_limit())
}

fn concurrency_for_limit(nofile: u64) -> usize {
    nofile
        .saturating_sub(RESERVED_FDS)
        .clamp(16, MAX_AUTO_CONCURRENCY) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_follows_the_fd_limit() {
        assert_eq!(concurrency_for_limit(1024), 896);
        assert_eq!(concurrency_for_limit(100), 16);
        assert_eq!(concurrency_for_limit(1 << 20), 10_000);
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        let before = raise_nofile_limit();
        assert!(raise_nofile_limit() >= before);
    }
}
