//! The REST and agent APIs against a real server on loopback: tenancy,
//! roles, bad input, agent credentials and the OpenAPI document.

mod agent_auth;
mod bad_input;
mod common;
mod openapi;
mod roles;
mod tenancy;
