//! Integration tests against real servers on 127.0.0.1: an aiosmtpd SMTP server
//! (Python, started per test) and hyper HTTP(S) servers started in-process.
//!
//! The SMTP tests need `python3` with `aiosmtpd` (`pip install aiosmtpd`). Without
//! it they print SKIPPED and pass, unless `VIGIL_REQUIRE_SMTP=1` (as in CI), where
//! they fail. `VIGIL_PYTHON` picks another interpreter.

mod channels;
mod email;
mod support;
mod webhooks;
