//! `network held` for the TCP model: segments wait in flight, one queue per direction,
//! until a step delivers or drops one, and every segment the stack sends is there,
//! pure ACKs included.
//!
//! The socket rules stay in [`super`]: a segment that arrives in order does what it
//! does under `network instant` (`data_arrives`, `fin_arrives`, `reset`, `fin_acked`).
//! This layer adds what instant delivery never needed: sequence and acknowledgement
//! numbers (relative: the first data byte is 0), which segments the receiver accepts,
//! the ones it keeps out of order, and which ACKs it sends. The rules are smoltcp's
//! (`socket/tcp.rs` of smoltcp 0.14, as the executor sets its sockets up: Nagle off, no
//! delayed ACK, no congestion control), the only stack with held mode: in
//! `Socket::process`,
//!
//! - a segment whose ACK is below what the receiver already had acknowledged
//!   (`ack_number < ack_min`, "duplicate ACK") is dropped whole, its data too;
//! - a segment outside the receive window is not processed: an RST is dropped, data
//!   draws an ACK (`ack_reply`), anything else a challenge ACK, at most one a second
//!   (`challenge_ack_reply`; time does not pass in held mode, so one per socket);
//! - an RST in the window closes the socket, whatever the ACK;
//! - a FIN behind a hole (`window_start < segment_start`) is ignored;
//! - TIME_WAIT, and a FIN in CLOSE_WAIT, LAST_ACK or CLOSING, fall to "unexpected
//!   packet": dropped with no answer;
//! - data beyond a hole goes to the assembler, and while the assembler holds any (or
//!   has just emptied) each data segment is answered at once by `ack_reply`; otherwise
//!   the ACK is `Socket::dispatch`'s, sent when the poll after it finds
//!   `ack_to_transmit` (new data or a FIN acknowledged), in every state but CLOSED.
//!
//! A segment for a socket in CLOSED (reset, or LAST_ACK done) is answered by the
//! interface with an RST whose sequence number is the segment's ACK (`rst_reply`).
//!
//! **Fast retransmission.** At the end of `Socket::process`, an accepted segment with
//! no payload whose ACK equals the last one taken (`local_rx_last_ack`), below the
//! highest sequence number sent (`remote_last_seq`), and whose window equals the last
//! one seen (not `is_window_update`), is a duplicate ACK: `local_rx_dup_acks` counts
//! it, and the third starts `Timer::set_for_fast_retransmit`. Any other accepted
//! segment sets the count to 0 and takes its ACK as the last (a FIN counts as a
//! duplicate: it has no payload). The poll after it runs `dispatch`, where
//! `should_retransmit` sets `pending_fast_retransmit` and one segment goes out from
//! `local_seq_no`: up to one MSS of the unacknowledged data (the loopback's MTU is
//! 65,535 and held scripts write at most 16 KiB, so all of it), with the FIN when that
//! is the end of the send buffer in FIN_WAIT1, CLOSING or LAST_ACK; it replaces the ACK
//! dispatch would have sent. The window each segment carries is what the duplicate
//! test compares: `scaled_window()`, the receive buffer's free room (64 KiB less what
//! arrived in order and was not read) shifted right by the window scale (1, for
//! 64 KiB: `remote_win_shift`), except the SYN-ACK's, which is not scaled. Not
//! modelled: three duplicates when only the FIN is unacknowledged (the send buffer is
//! empty, so `seq_to_transmit` sends nothing and the pending flag waits for the next
//! segment); a campaign has not reached it.

use super::{Conn, Seg, TcpModel};
use crate::model::{SegmentKind, WireEvent};
use crate::step::{Dir, End, Outcome, SegName, TcpState, Which, WireSeg};
use std::collections::VecDeque;

/// The sequence space of one end, as the held wire sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct SeqSpace {
    /// The next sequence number to send (data bytes, then 1 for the FIN).
    snd_nxt: u64,
    /// The oldest unacknowledged (smoltcp's `local_seq_no`).
    snd_una: u64,
    /// Our FIN's sequence number, once sent.
    fin_seq: Option<u64>,
    /// The next in-order sequence number expected (`remote_seq_no + rx_buffer.len()`).
    rcv_nxt: u64,
    /// Data received beyond a hole, as sequence ranges (smoltcp's assembler).
    ooo: Vec<(u64, u64)>,
    /// The ACK number last sent (`remote_last_ack`).
    last_ack: u64,
    /// A challenge ACK was sent (smoltcp allows one a second).
    challenged: bool,
    /// The last ACK number taken as new (`local_rx_last_ack`; the handshake's is 0).
    dup_last: u64,
    /// Duplicate ACKs in a row (`local_rx_dup_acks`).
    dups: u8,
    /// The peer's window last seen, in bytes (`remote_win_len`); `None`: the SYN-ACK's
    /// unscaled 65,535, which no scaled window equals.
    win_seen: Option<u32>,
}

/// One segment in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct HeldSeg {
    seq: u64,
    ack: u64,
    len: u64,
    fin: bool,
    rst: bool,
    /// The window it advertises, in bytes (see the module docs).
    win: u32,
    /// It has the ACK flag (all but `rst_reply`'s RST to a segment that had one).
    ack_flag: bool,
}

/// Each socket's receive buffer in smoltcp's executor (`exec::smoltcp::BUF`): the
/// window is counted from it.
pub(super) const RX_BUF: u64 = 65_536;
/// smoltcp's window shift for that buffer (`remote_win_shift`: bits of the capacity
/// above 16).
const WIN_SHIFT: u32 = 1;

/// The window, in bytes, of a receive buffer holding `fill` bytes: smoltcp's
/// `scaled_window()` (at most `u16::MAX` once shifted), shifted back.
fn window(fill: u64) -> u32 {
    let scaled = (RX_BUF.saturating_sub(fill) >> WIN_SHIFT).min(u64::from(u16::MAX));
    u32::try_from(scaled << WIN_SHIFT).unwrap_or(u32::MAX)
}

impl HeldSeg {
    fn name(&self) -> SegName {
        let n = u32::try_from(self.len).unwrap_or(u32::MAX);
        match (self.rst, self.fin, n) {
            (true, _, _) => SegName::Rst,
            (_, true, 0) => SegName::Fin,
            (_, true, n) => SegName::DataFin(n),
            (_, false, 0) => SegName::Ack,
            (_, false, n) => SegName::Data(n),
        }
    }
}

/// The held wire of one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct HeldWire {
    seq: [SeqSpace; 2],
    /// In flight from end `i` to its peer, oldest first.
    queue: [VecDeque<HeldSeg>; 2],
    /// Every segment sent since the step began, as the executor reports them.
    sent: Vec<WireSeg>,
}

impl TcpModel {
    /// This model under `network held`: the handshake done, nothing in flight.
    pub fn held(mut self) -> TcpModel {
        let mut w = Box::<HeldWire>::default();
        // b last saw a's window in the handshake's ACK, scaled; a, the SYN-ACK's.
        w.seq[End::B.index()].win_seen = Some(window(0));
        self.held = Some(w);
        self
    }

    /// The window `x` advertises now: its receive buffer's free room, scaled.
    fn window_of(&self, x: End) -> u32 {
        let w = self.held.as_ref().expect("held mode");
        let s = &w.seq[x.index()];
        let fin = u64::from(
            w.seq[x.peer().index()]
                .fin_seq
                .is_some_and(|f| s.rcv_nxt > f),
        );
        let data_in = s.rcv_nxt.saturating_sub(fin);
        window(data_in.saturating_sub(self.ends[x.index()].taken))
    }

    fn wire_mut(&mut self) -> &mut HeldWire {
        self.held.as_mut().expect("held mode")
    }

    /// A segment leaves `x`: it waits in flight. The model's own ACKs are not sent
    /// here: the held rules decide every ACK (see the module docs).
    pub(super) fn hold_segment(&mut self, x: End, seg: Seg, note: &'static str) {
        let w = self.wire_mut();
        let s = &mut w.seq[x.index()];
        let ack = s.rcv_nxt;
        let h = match seg {
            Seg::Data { offset, len, .. } => {
                s.snd_nxt = s.snd_nxt.max(offset + len as u64);
                HeldSeg {
                    seq: offset,
                    ack,
                    len: len as u64,
                    fin: false,
                    rst: false,
                    win: 0,
                    ack_flag: true,
                }
            }
            Seg::Fin => {
                let seq = s.snd_nxt;
                s.fin_seq = Some(seq);
                s.snd_nxt += 1;
                HeldSeg {
                    seq,
                    ack,
                    len: 0,
                    fin: true,
                    rst: false,
                    win: 0,
                    ack_flag: true,
                }
            }
            Seg::Rst => HeldSeg {
                seq: s.snd_nxt,
                ack,
                len: 0,
                fin: false,
                rst: true,
                win: 0,
                ack_flag: true,
            },
            Seg::Ack | Seg::Held => return,
        };
        self.emit(x, h, note);
    }

    fn emit(&mut self, x: End, mut h: HeldSeg, note: &'static str) {
        h.win = self.window_of(x);
        let kind = match h.name() {
            SegName::Rst => SegmentKind::Rst,
            SegName::Fin | SegName::DataFin(_) => SegmentKind::Fin,
            SegName::Ack => SegmentKind::Ack,
            _ => SegmentKind::Data(h.len as usize),
        };
        self.log.push(WireEvent {
            from: self.names[x.index()],
            to: self.names[x.peer().index()],
            kind,
            note,
        });
        let seen = WireSeg {
            dir: Dir {
                from: self.names[x.index()],
                to: self.names[x.peer().index()],
            },
            name: h.name(),
            seq: h.seq,
            ack: h.ack_flag.then_some(h.ack),
        };
        let w = self.wire_mut();
        w.sent.push(seen);
        w.queue[x.index()].push_back(h);
    }

    /// The segments sent since the last call (the step's, with their numbers).
    pub fn take_segs(&mut self) -> Vec<WireSeg> {
        self.held
            .as_mut()
            .map_or(vec![], |w| std::mem::take(&mut w.sent))
    }

    /// A pure ACK from `y` of all it has in order.
    fn send_ack(&mut self, y: End, note: &'static str) {
        let s = &mut self.wire_mut().seq[y.index()];
        s.last_ack = s.rcv_nxt;
        let h = HeldSeg {
            seq: s.snd_nxt,
            ack: s.rcv_nxt,
            len: 0,
            fin: false,
            rst: false,
            win: 0,
            ack_flag: true,
        };
        self.emit(y, h, note);
    }

    /// smoltcp's `send_queue()`: data written and not yet acknowledged (the FIN is not
    /// counted).
    pub(super) fn held_outq(&self, x: End) -> usize {
        self.held.as_ref().map_or(0, |w| {
            let s = &w.seq[x.index()];
            (s.fin_seq.unwrap_or(s.snd_nxt).saturating_sub(s.snd_una)) as usize
        })
    }

    /// `held`: what is in flight from `x`, oldest first.
    pub fn held_names(&self, x: End) -> Vec<SegName> {
        self.held.as_ref().map_or(vec![], |w| {
            w.queue[x.index()].iter().map(HeldSeg::name).collect()
        })
    }

    /// How many segments are in flight from `x`.
    pub fn held_count(&self, x: End) -> usize {
        self.held.as_ref().map_or(0, |w| w.queue[x.index()].len())
    }

    /// `drop`: the oldest segment from `x` is lost.
    pub fn drop_held(&mut self, x: End) -> Outcome {
        self.log.clear();
        match self.wire_mut().queue[x.index()].pop_front() {
            Some(_) => Outcome::Ok,
            None => Outcome::NotApplicable,
        }
    }

    /// `deliver`: segments from `x` arrive, each answered before the next.
    pub fn deliver_held(&mut self, x: End, which: Which) -> Outcome {
        self.log.clear();
        let picks: Vec<HeldSeg> = match which {
            Which::Nth(k) => match self.wire_mut().queue[x.index()].remove(usize::from(k) - 1) {
                Some(h) => vec![h],
                None => return Outcome::NotApplicable,
            },
            Which::All => self.wire_mut().queue[x.index()].drain(..).collect(),
        };
        for h in picks {
            self.arrives(x.peer(), h);
        }
        Outcome::Ok
    }

    /// smoltcp's `Socket::process` and the poll after it, for segment `h` at `y`.
    fn arrives(&mut self, y: End, h: HeldSeg) {
        let state = self.ends[y.index()].state;
        if state == TcpState::Close {
            // The socket no longer accepts (Socket::accepts in CLOSED): the interface
            // answers anything but an RST with one (rst_reply).
            if !h.rst {
                let r = HeldSeg {
                    seq: h.ack,
                    ack: h.seq + h.len + u64::from(h.fin),
                    len: 0,
                    fin: false,
                    rst: true,
                    win: 0,
                    ack_flag: false,
                };
                self.emit(y, r, "segment for a CLOSED socket: smoltcp rst_reply");
            }
            return;
        }
        let s = self.wire_mut().seq[y.index()].clone();
        // Window: smoltcp's receive buffer keeps at least 48 KiB free here (held
        // scripts write at most 16 KiB per end), so only its start matters.
        let start = s.rcv_nxt;
        let in_window = if h.len == 0 {
            h.seq >= start
        } else {
            h.seq + h.len > start
        };
        if h.rst {
            if in_window {
                self.reset(y);
            }
            return;
        }
        if h.ack < s.snd_una {
            // "duplicate ACK": dropped whole, before anything else is looked at.
            return;
        }
        if !in_window {
            if h.len > 0 {
                self.send_ack(y, "segment outside the window: smoltcp ack_reply");
            } else if !s.challenged {
                self.wire_mut().seq[y.index()].challenged = true;
                self.send_ack(y, "segment outside the window: smoltcp challenge_ack_reply");
            }
            return;
        }
        let ack_of_fin = s.fin_seq.is_some_and(|f| h.ack == f + 1);
        let fin = h.fin && h.seq <= start;
        match (state, fin) {
            (TcpState::TimeWait, _)
            | (TcpState::CloseWait | TcpState::LastAck | TcpState::Closing, true) => {
                // "unexpected packet": dropped before its ACK is looked at.
                return;
            }
            (TcpState::LastAck, false) if !ack_of_fin && h.ack == s.snd_una => {
                if !s.challenged {
                    self.wire_mut().seq[y.index()].challenged = true;
                    self.send_ack(
                        y,
                        "LAST_ACK without the FIN's ACK: smoltcp challenge_ack_reply",
                    );
                }
                return;
            }
            _ => {}
        }
        // Duplicate ACKs (process, after the state machine; see the module docs).
        let fast_rexmit = {
            let t = &mut self.wire_mut().seq[y.index()];
            let dup = h.len == 0 && t.dup_last == h.ack && h.ack < t.snd_nxt;
            let dup = dup && t.win_seen == Some(h.win);
            t.win_seen = Some(h.win);
            if dup {
                t.dups = t.dups.saturating_add(1);
                t.dups == 3
            } else {
                t.dups = 0;
                t.dup_last = h.ack;
                false
            }
        };
        self.wire_mut().seq[y.index()].snd_una = h.ack;
        // Linux counts the FIN in SIOCOUTQ; smoltcp's send_queue() counts data only.
        let data_unacked = s.fin_seq.unwrap_or(s.snd_nxt).saturating_sub(h.ack);
        self.end(y).outq_hi = data_unacked as usize;
        if ack_of_fin {
            self.fin_acked(y);
        }
        // The payload: in order, or into the assembler.
        let had_ooo = !s.ooo.is_empty();
        if h.len > 0 {
            let (lo, hi) = (h.seq.max(start), h.seq + h.len);
            let mut ranges = s.ooo.clone();
            ranges.push((lo, hi));
            ranges.sort_unstable();
            let mut nxt = start;
            let mut rest = vec![];
            for (a, b) in ranges {
                if a <= nxt {
                    nxt = nxt.max(b);
                } else {
                    rest.push((a, b));
                }
            }
            let mut merged: Vec<(u64, u64)> = vec![];
            for (a, b) in rest {
                match merged.last_mut() {
                    Some(m) if a <= m.1 => m.1 = m.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            let new = nxt - start;
            self.wire_mut().seq[y.index()].ooo = merged;
            if new > 0 {
                self.wire_mut().seq[y.index()].rcv_nxt = nxt;
                let offset = self.ends[y.index()].rq.start + self.ends[y.index()].rq.len as u64;
                self.data_arrives(y, offset, new as usize, false);
            }
        }
        let fin = fin && self.wire_mut().seq[y.index()].rcv_nxt == h.seq + h.len;
        if fin {
            self.wire_mut().seq[y.index()].rcv_nxt += 1;
            let before = self.ends[y.index()].state;
            self.fin_arrives(y);
            if before == TcpState::FinWait1 && ack_of_fin {
                // smoltcp: FIN_WAIT1 with the FIN's ACK and a FIN goes to TIME_WAIT.
                let e = self.end(y);
                if e.state == TcpState::Closing {
                    Self::done(e, Conn::TimeWait);
                    self.time_wait_shows(y);
                }
            }
        }
        if self.ends[y.index()].state == TcpState::Close {
            return;
        }
        let s = &self.wire_mut().seq[y.index()];
        let around_hole = h.len > 0 && (had_ooo || !s.ooo.is_empty());
        let ack_due = s.rcv_nxt > s.last_ack;
        if around_hole {
            self.send_ack(y, "data around a hole: smoltcp ack_reply");
        } else if !(fast_rexmit && self.fast_retransmit(y)) && ack_due {
            self.send_ack(y, "ACK of what arrived: smoltcp dispatch, ack_to_transmit");
        }
    }

    /// The third duplicate ACK has arrived at `y`: dispatch's `pending_fast_retransmit`
    /// segment, all the unacknowledged data from `local_seq_no`, the FIN with it when
    /// the send half is closed. `false` when no data is unacknowledged (not modelled:
    /// see the module docs).
    fn fast_retransmit(&mut self, y: End) -> bool {
        let state = self.ends[y.index()].state;
        let s = &mut self.wire_mut().seq[y.index()];
        let len = s.fin_seq.unwrap_or(s.snd_nxt).saturating_sub(s.snd_una);
        if len == 0 {
            return false;
        }
        s.last_ack = s.rcv_nxt;
        let h = HeldSeg {
            seq: s.snd_una,
            ack: s.rcv_nxt,
            len,
            fin: s.fin_seq.is_some()
                && matches!(
                    state,
                    TcpState::FinWait1 | TcpState::Closing | TcpState::LastAck
                ),
            rst: false,
            win: 0,
            ack_flag: true,
        };
        self.emit(y, h, "third duplicate ACK: smoltcp fast retransmit");
        true
    }
}
