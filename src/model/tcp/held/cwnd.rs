//! Linux's congestion window on one end of the held wire, as far as it decides when
//! new data leaves: Reno without SACK (the wire's settings, see
//! [`crate::exec::wire::SYSCTLS`]), fast recovery with proportional rate reduction.
//!
//! The counters are the kernel's (`tcp_packets_in_flight`: packets_out - (sacked_out
//! + lost_out) + retrans_out), kept only as far as the held world needs them:
//!
//! - **Open and Disorder.** The window starts at TCP_INIT_CWND (10). Slow start grows
//!   it on an ACK that acknowledges data, but only while it is "cwnd limited"
//!   (tcp_is_cwnd_limited: cwnd < 2 * max_packets_out), so it stays exactly 10 until
//!   an ACK of data arrives after six or more segments were out at once; from then on
//!   10 is only a lower bound ([`Cwnd::exact`] is false). Reno's duplicate ACKs count
//!   as sacked_out, which leaves the flight.
//! - **Recovery** (tcp_enter_recovery, on the duplicate ACK that reaches
//!   tp->reordering): ssthresh = max(cwnd / 2, 2), prior_cwnd = cwnd, and PRR
//!   (tcp_cwnd_reduction) sets cwnd = in_flight + sndcnt on every ACK that delivers
//!   something. The fast retransmission collapses everything outstanding into the head
//!   (tcp_retrans_try_collapse, see the held rules), which is then one packet, lost and
//!   retransmitted: in flight 1 while unacknowledged, each skb of new data sent since
//!   adds one, and Reno's sacked_out (cut to packets_out - holes, tcp_limit_reno_sacked)
//!   takes them away again. An ACK that moves SND.UNA but leaves the head partly
//!   acknowledged delivers nothing (tcp_clean_rtx_queue counts whole skbs) and resends
//!   nothing (the head is already retransmitted: tcp_xmit_retransmit_queue skips it).
//!   An ACK of exactly high_seq keeps Reno in Recovery (tcp_try_undo_recovery, "hold
//!   old state until something *above* high_seq is ACKed"), and from then on each
//!   duplicate ACK only resets sacked_out (tcp_fastretrans_alert returns before
//!   counting it), so it delivers nothing; one past high_seq ends recovery
//!   with cwnd = ssthresh (tcp_end_cwnd_reduction). From then on congestion avoidance
//!   may grow the window, which is not followed: ssthresh is a lower bound.
//! - **Loss** (the retransmission timer): the window is not followed (cwnd 1, slow
//!   start); what it does to duplicate ACKs is ([`Cwnd::loss`]).
//!
//! What the window holds back waits in one skb at the tail of the write queue
//! ([`Unsent`]): later writes join it (tcp_sendmsg appends to the tail skb while it has
//! room: the MSS is ~64 KiB here) and so does a FIN (tcp_send_fin sets FIN on the
//! unsent tail skb); with nothing unsent a bare FIN is an skb of its own that the window
//! holds back like data (6.x's tcp_cwnd_test has no exception for the FIN; older
//! kernels had one). It leaves on an ACK that opens the window (tcp_data_snd_check
//! after tcp_ack), carrying the ACK that would otherwise have been sent alone.

/// TCP_INIT_CWND.
pub(super) const INIT_CWND: u32 = 10;

/// The congestion state of one end (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Cwnd {
    /// tp->snd_cwnd: exactly while [`Cwnd::exact`], else a lower bound.
    pub cwnd: u32,
    /// Whether `cwnd` is the kernel's, not only a lower bound.
    pub exact: bool,
    /// The most packets out at once so far (an upper bound of max_packets_out).
    pub max_out: u32,
    /// Fast recovery, while it lasts.
    pub rec: Option<Recovery>,
    /// Loss (the retransmission timer fired: tcp_enter_loss), while it lasts: SND.NXT
    /// then (high_seq). Duplicate ACKs start no fast retransmission in it
    /// (tcp_fastretrans_alert hands them to tcp_process_loss, which counts them only
    /// once new data went out past high_seq, and returns), and Reno holds it until an
    /// ACK goes past high_seq (tcp_try_undo_recovery).
    pub loss: Option<u64>,
}

impl Default for Cwnd {
    fn default() -> Self {
        Cwnd {
            cwnd: INIT_CWND,
            exact: true,
            max_out: 0,
            rec: None,
            loss: None,
        }
    }
}

/// Fast recovery's state (tcp_init_cwnd_reduction and PRR's counters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Recovery {
    /// SND.NXT when recovery began: an ACK past it ends recovery.
    pub high_seq: u64,
    /// tp->snd_ssthresh (tcp_reno_ssthresh: max(cwnd >> 1, 2)).
    pub ssthresh: u32,
    /// tp->prior_cwnd.
    pub prior_cwnd: u32,
    /// tp->prr_delivered, tp->prr_out.
    pub prr_delivered: u32,
    pub prr_out: u32,
    /// Where the collapsed head ends (lost and retransmitted until acknowledged whole).
    pub head_end: u64,
    /// Where each skb of new data sent since recovery began ends, oldest first.
    pub new_ends: Vec<u64>,
    /// Reno's sacked_out since the collapse.
    pub sacked: u32,
}

/// Data (and perhaps the FIN) written that the window holds back: from SND.NXT to
/// `end`, then the FIN if `fin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Unsent {
    pub end: u64,
    pub fin: bool,
}

impl Recovery {
    /// Begins recovery on the duplicate ACK that made `sacked` of `packets_out`
    /// sacked, with `cwnd` the window before, `snd_nxt` what was sent: PRR's first
    /// step (one packet delivered by this ACK) sets the window that the collapsed
    /// retransmission then takes one packet of. Returns the recovery and the window.
    pub fn begin(cwnd: u32, packets_out: u32, sacked: u32, snd_nxt: u64) -> (Recovery, u32) {
        let mut r = Recovery {
            high_seq: snd_nxt,
            ssthresh: (cwnd >> 1).max(2),
            prior_cwnd: cwnd,
            prr_delivered: 0,
            prr_out: 0,
            head_end: snd_nxt,
            new_ends: vec![],
            sacked: 0,
        };
        // Before the retransmission: the head lost (lost_out 1), none retransmitted.
        let in_flight = packets_out.saturating_sub(sacked + 1);
        let cwnd = r.reduce(1, false, in_flight);
        // tcp_retrans_try_collapse: the head is every packet that was out, and
        // tcp_adjust_pcount takes sacked_out down with the packets it merges.
        r.prr_out = 1;
        (r, cwnd)
    }

    /// tcp_packets_in_flight after `snd_una`.
    pub fn in_flight(&self, snd_una: u64) -> u32 {
        let (head, news) = self.outstanding(snd_una);
        // The head: one packet out, lost, retransmitted.
        (head + news).saturating_sub(self.sacked)
    }

    /// The head (0 or 1) and the skbs of new data still unacknowledged.
    fn outstanding(&self, snd_una: u64) -> (u32, u32) {
        let head = u32::from(self.head_end > snd_una);
        let news = self.new_ends.iter().filter(|&&e| e > snd_una).count();
        (head, u32::try_from(news).unwrap_or(u32::MAX))
    }

    /// tcp_limit_reno_sacked: sacked_out + holes (lost_out, at least 1) cannot
    /// exceed packets_out. Returns packets_out when it cut (tcp_check_reno_reordering
    /// then sets tp->reordering from it).
    pub fn limit_sacked(&mut self, snd_una: u64) -> Option<u32> {
        let (head, news) = self.outstanding(snd_una);
        let packets_out = head + news;
        let holes = head.max(1).min(packets_out);
        (self.sacked + holes > packets_out).then(|| {
            self.sacked = packets_out - holes;
            packets_out
        })
    }

    /// tcp_cwnd_reduction for an ACK that delivered `delivered` packets, with
    /// `in_flight` after it: the new window.
    pub fn reduce(&mut self, delivered: u32, una_advanced: bool, in_flight: u32) -> u32 {
        self.prr_delivered += delivered;
        let delta = i64::from(self.ssthresh) - i64::from(in_flight);
        let mut sndcnt = if delta < 0 {
            let dividend = u64::from(self.ssthresh) * u64::from(self.prr_delivered)
                + u64::from(self.prior_cwnd)
                - 1;
            (dividend / u64::from(self.prior_cwnd.max(1))) as i64 - i64::from(self.prr_out)
        } else {
            let mut s = i64::from(self.prr_delivered.saturating_sub(self.prr_out))
                .max(i64::from(delivered));
            // No packet is ever newly marked lost by an ACK that moves SND.UNA here
            // (see the module docs).
            if una_advanced {
                s += 1;
            }
            delta.min(s)
        };
        // "Force a fast retransmit upon entering fast recovery".
        sndcnt = sndcnt.max(i64::from(self.prr_out == 0));
        in_flight + u32::try_from(sndcnt).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entering_with_every_other_packet_sacked_leaves_room_for_the_retransmission_only() {
        // Four packets out, three duplicate ACKs: in flight 0 before the
        // retransmission, so cwnd 1, which the retransmission fills.
        let (r, cwnd) = Recovery::begin(10, 4, 3, 183);
        assert_eq!((r.ssthresh, r.prior_cwnd, r.prr_delivered), (5, 10, 1));
        assert_eq!(cwnd, 1);
        assert_eq!(r.in_flight(39), 1);
    }

    #[test]
    fn entering_with_a_packet_unsacked_lets_one_new_segment_out() {
        // Five out, three sacked: one more in flight, so cwnd 2.
        let (r, cwnd) = Recovery::begin(10, 5, 3, 5);
        assert_eq!(cwnd, 2);
        assert!(r.in_flight(0) < cwnd);
    }

    #[test]
    fn the_ack_of_high_seq_opens_the_window_by_two() {
        // tcp_cwnd_reduction: prr_delivered 2, prr_out 1, delta 5: sndcnt
        // max(1, 1) + 1 for the advanced SND.UNA.
        let (mut r, _) = Recovery::begin(10, 4, 3, 183);
        assert_eq!(r.reduce(1, true, r.in_flight(183)), 2);
    }

    #[test]
    fn sacked_is_cut_to_what_is_out_less_the_hole() {
        let (mut r, _) = Recovery::begin(10, 4, 3, 100);
        r.sacked = 1;
        // Only the head is out: nothing can be sacked.
        assert_eq!(r.limit_sacked(0), Some(1));
        assert_eq!(r.sacked, 0);
        r.new_ends = vec![110, 120];
        r.sacked = 2;
        assert_eq!(r.limit_sacked(0), None);
        r.sacked = 3;
        assert_eq!(r.limit_sacked(0), Some(3));
        assert_eq!(r.sacked, 2);
    }

    #[test]
    fn a_deep_flight_reduces_by_the_ratio() {
        // delta < 0: ssthresh * prr_delivered / prior_cwnd, rounded up, less prr_out.
        let mut r = Recovery::begin(10, 4, 3, 100).0;
        r.prr_delivered = 3;
        r.prr_out = 1;
        // ceil(5 * 4 / 10) - 1 = 1.
        assert_eq!(r.reduce(1, false, 7), 8);
    }
}
