//! Pieces every transport model shares: receive queues that know the writer's byte
//! pattern, and the rule for steps on a closed descriptor.

use super::WireEvent;
use crate::step::{pattern, End, EndView, Op, Outcome, Sock, StepResult};
use std::collections::VecDeque;

/// Unread bytes of a byte stream. Bytes are never stored: the writer's pattern and the
/// stream offset say what they are, which keeps the model cheap to clone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamQueue {
    /// Stream offset of the first unread byte.
    pub start: u64,
    /// How many bytes are unread.
    pub len: usize,
}

impl StreamQueue {
    /// Appends `n` bytes.
    pub fn push(&mut self, n: usize) {
        self.len += n;
    }

    /// Takes up to `n` bytes written by `writer`.
    pub fn take(&mut self, writer: Sock, n: usize) -> Vec<u8> {
        let k = n.min(self.len);
        let out = pattern(writer, self.start, k);
        self.start += k as u64;
        self.len -= k;
        out
    }

    /// The first `n` unread bytes of `writer`'s stream, left unread (MSG_PEEK).
    pub fn peek(&self, writer: Sock, n: usize) -> Vec<u8> {
        pattern(writer, self.start, n.min(self.len))
    }

    /// Drops everything unread; returns how much that was.
    pub fn discard(&mut self) -> usize {
        let n = self.len;
        self.start += n as u64;
        self.len = 0;
        n
    }

    /// Whether nothing is unread.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Unread records of a record-preserving socket (seqpacket): each keeps its boundary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordQueue {
    /// (stream offset of the record's first byte, its length), oldest first.
    pub records: VecDeque<(u64, usize)>,
}

impl RecordQueue {
    /// Appends a record of `n` bytes starting at writer offset `offset`.
    pub fn push(&mut self, offset: u64, n: usize) {
        self.records.push_back((offset, n));
    }

    /// Takes the oldest record, truncated to `n` bytes (the rest of it is lost).
    pub fn take(&mut self, writer: Sock, n: usize) -> Option<Vec<u8>> {
        let (off, len) = self.records.pop_front()?;
        Some(pattern(writer, off, n.min(len)))
    }

    /// The oldest record, truncated to `n` bytes, left queued whole (MSG_PEEK).
    pub fn peek(&self, writer: Sock, n: usize) -> Option<Vec<u8>> {
        let &(off, len) = self.records.front()?;
        Some(pattern(writer, off, n.min(len)))
    }

    /// Drops everything; returns how many bytes that was.
    pub fn discard(&mut self) -> usize {
        let n = self.records.iter().map(|r| r.1).sum();
        self.records.clear();
        n
    }

    /// Whether no record is queued (a zero-length record still counts as one).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// The result of any step on a socket whose descriptor is already closed, or that
/// does not exist yet: no call is made (descriptor numbers are reused, also by other
/// threads), in the model and the executor alike.
pub fn closed_result() -> StepResult {
    StepResult::plain(Outcome::Closed)
}

/// One connection's two sides, as a transport model keeps them. The world
/// ([`super::world`]) names the sides, routes calls to them and looks at them.
pub trait Connection {
    /// Whether `end`'s descriptor is open.
    fn fd_open(&self, end: End) -> bool;
    /// The call itself, on an open descriptor; segments it sends go in flight.
    fn call(&mut self, end: End, op: Op) -> StepResult;
    /// A step on a closed descriptor: no call is made ([`closed_result`]), except where
    /// the transport can still be asked about what the kernel holds (TCP's `state`).
    fn call_closed(&mut self, end: End, op: Op) -> StepResult;
    /// Delivers the oldest segment in flight; false if none was.
    fn deliver_one(&mut self) -> bool;
    /// One side as it is now.
    fn view(&self, end: End) -> EndView;
    /// The wire log the current step writes to.
    fn wire_log(&mut self) -> &mut Vec<WireEvent>;
    /// Gives a side its script name (the accepted side gets one at accept).
    fn set_name(&mut self, end: End, sock: Sock);
    /// Shutdown bits a socket had set before it connected, carried into the connection.
    fn preset_shutdown(&mut self, end: End, rcv: bool, snd: bool);
    /// The side was never accepted and its listener goes away: the kernel drops it.
    fn forget_unaccepted(&mut self, end: End);
    /// What the kernel did at the coming step, to settle a choice the model leaves
    /// open (see [`super::Hint`]); `None` when the model predicts alone.
    fn set_hint(&mut self, hint: Option<super::Hint>);
    /// Buffer sizes a side had set before it connected (`rcvbuf N`, `sndbuf N`).
    fn preset_bufs(&mut self, end: End, bufs: crate::step::Bufs);

    /// One call, delivered to the end: on Linux loopback and Unix sockets delivery
    /// completes inside the sending call, so a step's prediction is taken with nothing
    /// left in flight. (A later mode can call [`Connection::deliver_one`] itself.)
    fn drive(&mut self, end: End, op: Op) -> StepResult {
        let result = if self.fd_open(end) {
            self.call(end, op)
        } else {
            self.call_closed(end, op)
        };
        self.deliver_all();
        result
    }

    /// Delivers everything in flight.
    fn deliver_all(&mut self) {
        while self.deliver_one() {}
    }
}

/// Implements [`Connection`] for a model whose inherent `call`, `deliver_one` and
/// `view_end` do the work, with `ends[i].fd_open`, `names` and a `log` field.
macro_rules! impl_connection {
    ($model:ty) => {
        impl $crate::model::common::Connection for $model {
            fn fd_open(&self, end: $crate::step::End) -> bool {
                self.ends[end.index()].fd_open
            }
            fn call(
                &mut self,
                end: $crate::step::End,
                op: $crate::step::Op,
            ) -> $crate::step::StepResult {
                <$model>::call(self, end, op)
            }
            fn call_closed(
                &mut self,
                end: $crate::step::End,
                op: $crate::step::Op,
            ) -> $crate::step::StepResult {
                <$model>::call_closed(self, end, op)
            }
            fn deliver_one(&mut self) -> bool {
                <$model>::deliver_one(self)
            }
            fn view(&self, end: $crate::step::End) -> $crate::step::EndView {
                <$model>::view_end(self, end)
            }
            fn wire_log(&mut self) -> &mut Vec<$crate::model::WireEvent> {
                &mut self.log
            }
            fn set_name(&mut self, end: $crate::step::End, sock: $crate::step::Sock) {
                self.names[end.index()] = sock;
            }
            fn preset_shutdown(&mut self, end: $crate::step::End, rcv: bool, snd: bool) {
                let e = &mut self.ends[end.index()];
                e.rcv_shut |= rcv;
                e.snd_shut |= snd;
            }
            fn forget_unaccepted(&mut self, end: $crate::step::End) {
                <$model>::forget_unaccepted(self, end)
            }
            fn set_hint(&mut self, hint: Option<$crate::model::Hint>) {
                self.hint = hint;
            }
            fn preset_bufs(&mut self, end: $crate::step::End, bufs: $crate::step::Bufs) {
                let e = &mut self.ends[end.index()];
                e.bufs = bufs;
            }
        }
    };
}
pub(crate) use impl_connection;
