//! Pieces every transport model shares: receive queues that know the writer's byte
//! pattern, and the rule for steps on a closed descriptor.

use super::{Prediction, WireEvent};
use crate::step::{pattern, End, Observation, Outcome, Step, StepResult};
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
    pub fn take(&mut self, writer: End, n: usize) -> Vec<u8> {
        let k = n.min(self.len);
        let out = pattern(writer, self.start, k);
        self.start += k as u64;
        self.len -= k;
        out
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
    pub fn take(&mut self, writer: End, n: usize) -> Option<Vec<u8>> {
        let (off, len) = self.records.pop_front()?;
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

/// The result of any step on an end whose descriptor is already closed: no call is
/// made (descriptor numbers are reused, also by other threads), in the model and the
/// executor alike.
pub fn closed_result(_step: Step) -> StepResult {
    StepResult::plain(Outcome::Closed)
}

/// The driver every transport model shares: run the call (or the closed-descriptor
/// rule), then let the network deliver everything in flight, then look.
pub trait Connection {
    /// Whether `end`'s descriptor is open.
    fn fd_open(&self, end: End) -> bool;
    /// The call itself, on an open descriptor; segments it sends go in flight.
    fn call(&mut self, step: Step) -> StepResult;
    /// Delivers the oldest segment in flight; false if none was.
    fn deliver_one(&mut self) -> bool;
    /// Both ends as they are now.
    fn view(&self) -> Observation;
    /// The wire log the current step writes to.
    fn wire_log(&mut self) -> &mut Vec<WireEvent>;

    /// One step, delivered to the end: on Linux loopback and Unix sockets delivery
    /// completes inside the sending call, so a step's prediction is taken with nothing
    /// left in flight. (A later mode can call [`Connection::deliver_one`] itself.)
    fn drive(&mut self, step: Step) -> Prediction {
        self.wire_log().clear();
        let result = if self.fd_open(step.end) {
            self.call(step)
        } else {
            closed_result(step)
        };
        while self.deliver_one() {}
        Prediction {
            result,
            after: self.view(),
            wire: std::mem::take(self.wire_log()),
        }
    }
}

/// Implements [`Connection`] for a model whose inherent `call`, `deliver_one` and `view`
/// do the work, with `ends[i].fd_open` and a `log` field.
macro_rules! impl_connection {
    ($model:ty) => {
        impl $crate::model::common::Connection for $model {
            fn fd_open(&self, end: $crate::step::End) -> bool {
                self.ends[end.index()].fd_open
            }
            fn call(&mut self, step: $crate::step::Step) -> $crate::step::StepResult {
                <$model>::call(self, step)
            }
            fn deliver_one(&mut self) -> bool {
                <$model>::deliver_one(self)
            }
            fn view(&self) -> $crate::step::Observation {
                <$model>::view(self)
            }
            fn wire_log(&mut self) -> &mut Vec<$crate::model::WireEvent> {
                &mut self.log
            }
        }
    };
}
pub(crate) use impl_connection;
