//! The kinds of connection closefuzz knows how to create and model.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A connection kind: address family and socket type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Transport {
    /// TCP over IPv4 loopback (127.0.0.1).
    #[default]
    Tcp4,
    /// TCP over IPv6 loopback (::1).
    Tcp6,
    /// `AF_UNIX` `SOCK_STREAM`.
    Unix,
    /// `AF_UNIX` `SOCK_SEQPACKET`.
    Seqpacket,
}

impl Transport {
    /// Every transport, in the order reports list them.
    pub const ALL: [Transport; 4] = [
        Transport::Tcp4,
        Transport::Tcp6,
        Transport::Unix,
        Transport::Seqpacket,
    ];

    /// The name used in scripts and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp4 => "tcp4",
            Transport::Tcp6 => "tcp6",
            Transport::Unix => "unix",
            Transport::Seqpacket => "seqpacket",
        }
    }

    /// Parses a script or command-line name.
    pub fn from_name(s: &str) -> Option<Transport> {
        Self::ALL.iter().copied().find(|t| t.name() == s)
    }

    /// Whether this is TCP (so `state` means something and RST exists).
    pub fn is_tcp(self) -> bool {
        matches!(self, Transport::Tcp4 | Transport::Tcp6)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Transport::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = Transport::ALL.iter().map(|t| t.name()).collect();
            format!(
                "unknown transport '{s}': expected one of {}",
                names.join(", ")
            )
        })
    }
}
