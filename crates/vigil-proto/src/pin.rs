//! Certificate pins (the type lives in `vigil_core::pin`: compliance scopes
//! pin directory certificates with it too).

pub use vigil_core::pin::{CertPin, PinError};
