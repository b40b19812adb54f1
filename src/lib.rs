//! Agent Gather: one binary that is the room server, the CLI for hosts and agents, the
//! browser room and the tunnel broker. See `ARCHITECTURE.md` for the map.

pub mod cli;
pub mod client;
#[doc(hidden)]
pub mod fuzzing;
pub mod mcp;
pub mod net;
pub mod privfile;
pub mod protocol;
pub mod server;
pub mod session;
pub mod store;
pub mod tunnel;
pub mod web;
