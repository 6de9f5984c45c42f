//! The Unix-socket models (stream and seqpacket). Filled in with issue 4.

use super::Prediction;
use crate::step::{End, EndView, Observation, Outcome, Step, StepResult};

/// Which Unix socket type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// SOCK_STREAM
    Stream,
    /// SOCK_SEQPACKET
    Seqpacket,
}

/// A model of one Unix-socket connection.
#[derive(Clone, Debug)]
pub struct UnixModel {
    kind: Kind,
}

impl UnixModel {
    /// A fresh connected pair.
    pub fn new(kind: Kind) -> UnixModel {
        UnixModel { kind }
    }
    /// Runs one step.
    pub fn step(&mut self, _step: Step) -> Prediction {
        Prediction {
            result: StepResult::plain(Outcome::NotApplicable),
            after: self.view(),
            wire: vec![],
        }
    }
    /// Both ends.
    pub fn view(&self) -> Observation {
        [EndView::Closed, EndView::Closed]
    }
    /// For explain.
    pub fn describe(&self, _end: End) -> String {
        format!("{:?}", self.kind)
    }
}
