//! The adversarial suite (issue 14): the real server against a hostile
//! tenant, a hostile scanned host and an anonymous client. One module per
//! kind of attack; each test fails on a server without the matching defence.

#[path = "../common/mod.rs"]
mod common;

mod csv_injection;
mod identify;
mod logins;
mod notifications;
mod secrets;
mod slow_clients;
mod ssrf;
mod tenancy;
