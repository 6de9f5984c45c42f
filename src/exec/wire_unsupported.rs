//! `network held` where it cannot run: this system has no TUN devices and network
//! namespaces as Linux has them (see the Linux `wire` module), so making a held world
//! fails with one line saying so, and no `Held` ever exists.

use crate::step::{Bufs, Outcome, Sock, Step, WireSeg};
use crate::transport::Transport;
use std::io;
use std::os::fd::{OwnedFd, RawFd};

/// A held wire; none can be made here.
pub(crate) enum Held {}

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "network held is unavailable here: it needs Linux's TUN devices and network namespaces",
    )
}

impl Held {
    pub(crate) fn connect(
        _transport: Transport,
        _bufs: &Bufs,
    ) -> io::Result<(Held, OwnedFd, OwnedFd)> {
        Err(unsupported())
    }

    pub(crate) fn listening(
        _transport: Transport,
        _bufs: &Bufs,
        _backlog: i32,
    ) -> io::Result<(Held, OwnedFd, OwnedFd, OwnedFd)> {
        Err(unsupported())
    }

    pub(crate) fn register(&mut self, _sock: Sock, _fd: RawFd) -> io::Result<()> {
        match *self {}
    }

    pub(crate) fn accepted(&mut self, _sock: Sock, _fd: RawFd) {
        match *self {}
    }

    pub(crate) fn listener_addr(&self) -> socket2::SockAddr {
        match *self {}
    }

    pub(crate) fn after_step(&mut self) {
        match *self {}
    }

    pub(crate) fn sleep(&mut self, _ms: u32) {
        match *self {}
    }

    pub(crate) fn wire_step(&mut self, _step: Step) -> Outcome {
        match *self {}
    }

    pub(crate) fn closed_state(&mut self, _sock: Sock) -> Outcome {
        match *self {}
    }

    pub(crate) fn take_seen(&mut self) -> io::Result<Vec<WireSeg>> {
        match *self {}
    }

    pub(crate) fn capture(&mut self) {
        match *self {}
    }

    pub(crate) fn take_packets(&mut self) -> Vec<super::Packet> {
        match *self {}
    }

    pub(crate) fn step_begins(&mut self) {
        match *self {}
    }
}
