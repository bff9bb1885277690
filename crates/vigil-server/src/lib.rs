//! The Vigil server, as a library the `vigil server` command drives.
//!
//! * [`tls`]: the server's self-signed certificate, created on first start,
//!   and the pin agents use to recognise it.

mod error;
pub mod tls;

pub use error::ServerError;
