//! Owns the config snapshot: the complete, immutable entity set of one control plane at one
//! revision. The store produces it; the proxy compiles it into route tables and swaps it in
//! atomically, so in-flight requests finish on the snapshot they started with.

use crate::model::{Consumer, KeyAuthCredential, Plugin, Route, Service};

/// Everything the proxy needs, at one revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSnapshot {
    pub revision: u64,
    pub services: Vec<Service>,
    pub routes: Vec<Route>,
    pub consumers: Vec<Consumer>,
    pub key_auths: Vec<KeyAuthCredential>,
    pub plugins: Vec<Plugin>,
}
