//! Platform profiles: how a platform departs from Linux, as data.
//!
//! The models are written for Linux. Another platform is Linux plus a list of named
//! differences; each difference is one field of [`Profile`], read by the one rule it
//! changes, and documented in [`differences`] with the scenario that shows it. No rule
//! asks which platform it runs on.

use super::memory::UnixMemory;
use super::Platform;
use crate::step::{Start, Surface};
use crate::transport::Transport;
use serde::Serialize;

/// One way a platform departs from Linux.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The profile field that carries it.
    pub name: &'static str,
    /// What differs, in a sentence.
    pub summary: &'static str,
    /// The scenario in scenarios/ that shows it (kernel results differ on it).
    pub evidence: &'static str,
}

/// What a platform does where platforms are known to differ. `Profile::linux()` is the
/// reference; other profiles change fields, and [`differences`] says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// The platform this profile describes.
    pub platform: Platform,
    /// What it can be asked (not a difference in behaviour: what cannot be asked is
    /// `n/a` in the tables and never generated).
    pub surface: Surface,
    /// MSG_OOB is ignored on every socket: `write N oob` is `write N` and `read N oob`
    /// is `read N` (Linux: TCP urgent data, Unix stream out-of-band bytes, EOPNOTSUPP
    /// on seqpacket).
    pub oob_ignored: bool,
    /// poll reports POLLRDHUP when the read side is shut.
    pub poll_rdhup: bool,
    /// A send that fails with EPIPE raises SIGPIPE (TCP and Unix stream; Linux never
    /// raises it for seqpacket, on any platform seen).
    pub sigpipe_on_epipe: bool,
    /// Differences in TCP only.
    pub tcp: TcpProfile,
    /// Differences in Unix sockets only.
    pub unix: UnixProfile,
}

/// TCP-only differences (fields are named in [`differences`] as `tcp.FIELD`). Fields
/// are kept in alphabetical order: the order in which the profile's JSON lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TcpProfile {
    /// SO_LINGER {on, 0} makes close send RST only while data of ours is unsent or
    /// unacknowledged (lwIP's lwip_netconn_do_close_internal calls tcp_abort then);
    /// otherwise the close is graceful (Linux: RST whenever the peer still expects
    /// data or a FIN, tcp_need_reset). A shutdown that leaves both directions shut is
    /// such a close, SO_LINGER check included (Linux's shutdown never aborts).
    pub abort_needs_unacked_data: bool,
    /// A FIN without data that arrives in order while the receive queue holds more
    /// than the receive buffer allows (SO_RCVBUF made smaller than what is queued) is
    /// dropped as data would be (Linux 6.1's tcp_data_queue: tcp_try_rmem_schedule
    /// fails unless the queue is empty), sends no ACK, and comes back only with the
    /// sender's retransmission timer. Linux since 6.10 takes it (2bd99aef1b19, "tcp:
    /// accept bare FIN packets under memory pressure").
    pub bare_fin_needs_receive_memory: bool,
    /// `close` closes the sending half only (smoltcp's close(): a FIN even with unread
    /// data; the receive half stays open and takes what arrives, into a buffer no one
    /// reads; no FIN_WAIT2 timeout), and `abort` sends an RST in every state but CLOSE
    /// (Linux: close shuts both halves, RST for unread or later data, an orphan's
    /// FIN_WAIT2 ends after tcp_fin_time).
    pub close_is_half_close: bool,
    /// `state` on a closed TCP socket cannot be asked (no NETLINK_SOCK_DIAG) and says
    /// `n/a` (Linux: sock_diag reports the orphan's state, TIME_WAIT, or `gone`).
    pub closed_state_unavailable: bool,
    /// A write on a connection that cannot send any more (shut for writing, closed,
    /// reset) with no error pending fails with ENOTCONN (Linux: EPIPE).
    pub closed_write_enotconn: bool,
    /// A connect on a connected socket asks its pcb (lwIP's lwip_netconn_do_connect):
    /// EISCONN while the netconn holds one not CLOSED, also at the first connect after
    /// a non-blocking one, and ENOTCONN (ERR_CLSD) once it let it go (a reset, the end
    /// of the connection, a full close). Linux's __inet_stream_connect: 0 once after
    /// EINPROGRESS, then EISCONN in every state.
    pub connect_by_pcb: bool,
    /// A shutdown of a socket whose connect failed leaves later connects as they were
    /// (gVisor: ECONNREFUSED, then ECONNABORTED). Linux's inet_shutdown makes an
    /// SS_CONNECTING socket SS_DISCONNECTING, and __inet_stream_connect then says
    /// EINVAL for good, leaving the error pending.
    pub connect_ignores_shutdown: bool,
    /// New data for an end in FIN_WAIT that has shut its read side resets the
    /// connection with ECONNABORTED as the receiving end's error (Linux: ECONNRESET).
    pub data_after_shutdown_aborts: bool,
    /// A FIN arriving in ESTABLISHED is ACKed later (Linux's delayed ACK), so its sender
    /// may still be in FIN_WAIT1; without it the ACK leaves at once (FIN_WAIT2).
    pub delayed_fin_ack: bool,
    /// Errors a connection met while it waited in the accept queue do not show in poll
    /// once it is accepted (lwIP's event_callback counts only receive events for a
    /// netconn with no socket yet, and lwip_accept starts errevent at 0): no ERR,
    /// although SO_ERROR has the error. Linux: ERR while the error is pending.
    pub errors_before_accept_not_polled: bool,
    /// Every socket's send and receive buffer holds exactly this many bytes, fixed when
    /// it is made: a write takes what the send buffer has free at the call, and the
    /// peer's window is its free receive buffer (smoltcp, as the executor makes its
    /// sockets; lwIP's TCP_SND_BUF and TCP_WND, lwip_netconn_do_writemore taking at
    /// most tcp_sndbuf). `None`: Linux's buffers, autotuned and charged by memory.
    pub fixed_buffers: Option<u32>,
    /// A failing write on a connection closed without error (CLOSE after the close
    /// handshake or after an RST in CLOSE_WAIT) takes and clears the pending error.
    pub failed_write_clears_error: bool,
    /// How long a connection closed in FIN_WAIT2 lasts before its timer removes it,
    /// and from when that timer counts.
    pub fin_wait2_timer: FinWait2Timer,
    /// After a full close (a shutdown that leaves both directions shut) an abort
    /// (SO_LINGER {on, 0}, then close) does nothing to the connection: the full close
    /// was already tcp_close and let the pcb go, and lwIP's close of a netconn without
    /// a pcb (lwip_netconn_do_delconn) skips the linger check that would tcp_abort.
    /// Linux: the socket keeps its connection, and the abort resets it.
    pub full_close_disarms_abort: bool,
    /// A full close (close, or a shutdown that leaves both directions shut) resets the
    /// connection only in ESTABLISHED or CLOSE_WAIT, and there whenever bytes that
    /// arrived were never read, shutdown(rd)'s drain counting as unread (lwIP's
    /// tcp_close_shutdown: rcv_wnd short of its maximum). Linux: close resets with
    /// unread data in any open state, and a shutdown never resets.
    pub full_close_resets_unread_when_open: bool,
    /// After a full close (a shutdown that leaves both directions shut) the socket
    /// hears nothing of its connection: a later RST leaves no error (lwIP's
    /// lwip_netconn_do_close_internal unhooks the error callback, tcp_err(NULL), and
    /// lets the pcb go). Linux: ECONNRESET is pending.
    pub full_close_unhooks_errors: bool,
    /// FIONREAD still counts the unread bytes a shutdown(rd) threw away (lwIP's
    /// netconn_drain frees the mailbox's pbufs without lowering recv_avail). Linux's
    /// SIOCINQ counts what can be read.
    pub inq_counts_drained: bool,
    /// An accepted socket does not inherit the listener's SO_LINGER; Linux's child
    /// starts as a copy of the listener (sk_clone_lock), SO_LINGER included.
    pub linger_not_inherited: bool,
    /// `shutdown rd` or `shutdown wr` of a TCP listener fails with ENOTCONN and changes
    /// nothing (lwIP's lwip_netconn_do_close: "LISTEN doesn't support half shutdown");
    /// Linux ignores shutdown(wr) there and shutdown(rd) stops the listener.
    pub listener_half_shutdown_enotconn: bool,
    /// FIONREAD (SIOCINQ) on a TCP listener says 0 (lwIP's lwip_ioctl reads recv_avail
    /// whatever the socket is); Linux's tcp_ioctl says EINVAL.
    pub listener_inq_zero: bool,
    /// A `shutdown rd` of a TCP listener resets its queue and makes accept EINVAL, and
    /// the socket stays in LISTEN (poll `-`); otherwise it becomes a plain CLOSE socket
    /// (Linux: tcp_disconnect).
    pub listener_shutdown_keeps_listen: bool,
    /// `shutdown rdwr` of a TCP listener closes its pcb and fires every event (lwIP's
    /// lwip_netconn_do_close_internal: tcp_close, then NETCONN_EVT_ERROR, RCVPLUS and
    /// SENDPLUS): it polls IN|OUT|ERR for good and reads say ENOTCONN (Linux: a plain
    /// CLOSE socket, OUT|HUP, reads ENOTCONN too but no ERR).
    pub listener_shutdown_rdwr_fires_events: bool,
    /// A write on a TCP listener fails with EINPROGRESS (lwIP's lwip_netconn_do_write:
    /// the netconn is not idle); Linux: EPIPE (sk_stream_wait_connect).
    pub listener_write_einprogress: bool,
    /// `ioctl(SIOCOUTQ)` on a TCP socket is an unknown request: ENOSYS (Linux: write_seq
    /// - snd_una, what the peer has not acknowledged).
    pub outq_enosys: bool,
    /// `ioctl(SIOCOUTQ)` on a TCP socket fails with ENOPROTOOPT (Linux: write_seq -
    /// snd_una, what the peer has not acknowledged).
    pub outq_unsupported: bool,
    /// poll reports ERR from the connection's first error event on (a reset, or a
    /// shutdown that closed both directions), and never clears it (Linux: ERR exactly
    /// while an error is pending).
    pub poll_err_sticky: bool,
    /// poll reports ERR for every CLOSE or TIME_WAIT socket, whatever SO_ERROR holds,
    /// and never for an open connection (Linux: ERR exactly while an error is pending).
    pub poll_err_when_closed: bool,
    /// poll reports HUP as soon as both directions are shut, in any state (Linux);
    /// otherwise only once the connection is CLOSE or TIME_WAIT.
    pub poll_hup_when_shut_both_ways: bool,
    /// poll's IN counts receive events (lwIP's rcvevent) rather than looking at the
    /// queue: each data pbuf, the FIN and a reset add one; reading a pbuf, the FIN's
    /// marker or a LAST_ACK's close message takes one back, a reset's marker does not;
    /// a shutdown of the read side adds one for good. Linux: IN while data is queued
    /// or the read side is shut.
    pub poll_in_counts_events: bool,
    /// poll never reports HUP (Linux: HUP once both directions are shut or the
    /// connection is closed).
    pub poll_no_hup: bool,
    /// A shutdown or close whose FIN waits in the send queue behind data the peer's
    /// window does not take yet leaves the state as it is until the FIN is sent
    /// (Linux: FIN_WAIT1 or LAST_ACK at once, tcp_close_state).
    pub queued_fin_keeps_state: bool,
    /// After a reset, a read returns the pending error before EOF even when the peer's
    /// FIN had arrived (Linux: EOF first, the error stays for SO_ERROR).
    pub read_error_before_eof: bool,
    /// A read on a connection that ended without the peer's FIN (a reset), with nothing
    /// queued, fails with ENOTCONN every time (smoltcp: RecvError::InvalidState; Linux:
    /// the error once, then EOF).
    pub read_without_fin_enotconn: bool,
    /// Data arrives in pbufs of one segment each (a write cut at the MSS), and the
    /// socket keeps the pbuf it began to read or peeked at (lwip_sock's lastdata,
    /// outside the mailbox): MSG_PEEK returns at most that pbuf (lwip_recv_tcp's loop
    /// stops after one when peeking), and a shutdown(rd) that drains the mailbox, or a
    /// reset, leaves it readable. Linux: peek sees the whole queue.
    pub reads_by_pbuf: bool,
    /// Reads take what arrived from a mailbox, in order: data, then the FIN's marker,
    /// then a reset's marker. The FIN's marker reads as EOF (the pending error, or
    /// ECONNRESET, if a reset has come since), after which every read is ENOTCONN; the
    /// reset's marker reads as ECONNRESET, after which a read takes the pending error
    /// or says ENOTCONN (Linux: EOF for good once the FIN is in, a reset's error once).
    /// The end of LAST_ACK, while the socket still reads, is told as a reset is, with
    /// ERR_CLSD: SO_ERROR says ENOTCONN, a read takes it as EOF.
    pub reads_from_mailbox: bool,
    /// A refused connect leaves its error twice (gVisor's handshakeFailed sets both
    /// hardError and lastError): a write, a read or SO_ERROR takes one, and SO_ERROR
    /// still finds the other. Linux: sk_err, once.
    pub refused_connect_error_twice: bool,
    /// After a failed connect (refused, or reset before a second connect asked how it
    /// ended), every later connect fails (ECONNABORTED once the error was taken) and the
    /// socket stays failed; otherwise (Linux) the connect after the
    /// failed one starts afresh (__inet_stream_connect's disconnect).
    pub refused_connect_no_retry: bool,
    /// A refused connect ends as a reset does (lwIP: the RST in SYN_SENT reaches
    /// err_tcp as ERR_RST): ECONNRESET is pending and waits as a marker in the mailbox
    /// (a read takes the marker, then the error), poll says IN|OUT|ERR for good, and the
    /// netconn, without a pcb, answers later connects and reads with ENOTCONN. Linux:
    /// ECONNREFUSED, once.
    pub refused_connect_resets: bool,
    /// An RST leaves ECONNRESET in every state (Linux: EPIPE in CLOSE_WAIT).
    pub reset_always_econnreset: bool,
    /// A reset leaves no pending error: writes say EPIPE, poll never says ERR (smoltcp
    /// keeps no error; Linux: ECONNRESET, or EPIPE in CLOSE_WAIT, for the next call).
    pub reset_leaves_no_error: bool,
    /// A shutdown never fails: on a CLOSE or TIME_WAIT connection it is `ok` and does
    /// nothing (smoltcp's close() has no result; Linux: ENOTCONN).
    pub shutdown_never_fails: bool,
    /// A shutdown that leaves both directions shut while unread data is queued aborts
    /// the connection with RST and ECONNABORTED (Linux: a FIN, the data stays).
    pub shutdown_with_unread_resets: bool,
    /// shutdown(rd) throws the unread data away and ends reading (later reads say
    /// ENOTCONN); data arriving afterwards aborts the connection (RST to the peer,
    /// ECONNABORTED here). Linux keeps the data readable and goes on queueing.
    pub shutdown_rd_drops_data: bool,
    /// shutdown(wr) once the FIN has been sent (FIN_WAIT, CLOSING, LAST_ACK) fails
    /// with ENOTCONN (Linux: success, nothing to do); so does every shutdown once the
    /// netconn let its pcb go (a reset, the end of the connection, an earlier full
    /// close), and only then: a TIME_WAIT pcb still held takes shutdown(rd).
    pub shutdown_wr_after_fin_enotconn: bool,
    /// Under `network held`, a segment that arrives is processed by smoltcp's rules
    /// (`Socket::process`: a segment with an old ACK is dropped whole, a FIN beyond a
    /// hole is ignored, TIME_WAIT drops what comes, fast retransmission after three
    /// duplicate ACKs of any size, SIOCOUTQ without the FIN; see
    /// `model::tcp::held`). Linux: tcp_rcv_state_process (an old ACK is ignored and
    /// the data kept, a FIN beyond a hole waits in the out-of-order queue, TIME_WAIT
    /// answers with an ACK, the FIN counted in SIOCOUTQ).
    pub smoltcp_segment_rules: bool,
    /// SO_SNDBUF is an unknown option: setting it fails with ENOPROTOOPT and the send
    /// buffer stays as it was, so a `sndbuf` header asks for nothing (lwIP's
    /// lwip_setsockopt_impl has no SO_SNDBUF case; Linux takes it).
    pub sndbuf_enoprotoopt: bool,
    /// TCP_INFO on an open fd whose connection went to TIME_WAIT reports TIME_WAIT
    /// (Linux: CLOSE, since a mini-socket holds TIME_WAIT and the fd's socket is done).
    pub time_wait_on_open_fd: bool,
    /// A TCP socket that never connected polls nothing (Linux: OUT|HUP).
    pub unconnected_poll_empty: bool,
    /// A TCP socket that never connected polls HUP alone (Linux: OUT|HUP).
    pub unconnected_poll_hup_only: bool,
    /// A read on a TCP socket that never connected says EAGAIN (Linux: ENOTCONN).
    pub unconnected_read_eagain: bool,
    /// The failed (ENOTCONN) shutdown of a never-connected TCP socket takes effect only
    /// at the first shutdown call after it connects (gVisor's shutdownLocked applies
    /// every direction ever asked for); Linux's inet_shutdown ORs the bits in at once,
    /// so a later poll says IN|RDHUP, a read EOF, and a later connection keeps them.
    pub unconnected_shutdown_deferred: bool,
    /// A shutdown of a TCP socket that never connected goes to its CLOSED pcb (lwIP's
    /// lwip_netconn_do_close_internal): `shutdown rd` succeeds (TF_RXCLOSED, the
    /// mailbox drained: poll IN, reads ENOTCONN, and a later connection starts shut
    /// for reading), `shutdown wr` alone fails with ENOTCONN and leaves nothing, and
    /// one that leaves both shut closes the pcb (tcp_close): every event fires (poll
    /// IN|OUT|ERR) and later calls say ENOTCONN. Linux's inet_shutdown: ENOTCONN, with
    /// the bits ORed in.
    pub unconnected_shutdown_by_pcb: bool,
    /// A write on a TCP socket that never connected fails with ENOTCONN (Linux: EPIPE).
    pub unconnected_write_enotconn: bool,
    /// A zero-length read looks at the state only, never waits for data: 0 bytes while
    /// the receive half is open (Linux: EAGAIN, tcp_recvmsg waits for data first) and
    /// EOF, reported as such, once the peer's FIN is read (smoltcp's recv_slice runs
    /// recv_error_check before it looks at the length; Linux returns 0).
    pub zero_length_read_at_once: bool,
    /// A zero-length write returns 0 on every socket, in every state, before the
    /// connection is looked at (lwIP's netconn_write_vectors_partly: size 0 is ERR_OK);
    /// Linux's tcp_sendmsg checks the state first (EPIPE once shut, ENOTCONN...).
    pub zero_length_write_returns_zero: bool,
}

impl TcpProfile {
    const LINUX: TcpProfile = TcpProfile {
        abort_needs_unacked_data: false,
        bare_fin_needs_receive_memory: false,
        close_is_half_close: false,
        closed_state_unavailable: false,
        closed_write_enotconn: false,
        connect_by_pcb: false,
        connect_ignores_shutdown: false,
        data_after_shutdown_aborts: false,
        delayed_fin_ack: true,
        errors_before_accept_not_polled: false,
        fixed_buffers: None,
        failed_write_clears_error: true,
        fin_wait2_timer: FinWait2Timer::Linger2,
        full_close_disarms_abort: false,
        full_close_resets_unread_when_open: false,
        full_close_unhooks_errors: false,
        inq_counts_drained: false,
        linger_not_inherited: false,
        listener_half_shutdown_enotconn: false,
        listener_inq_zero: false,
        listener_shutdown_keeps_listen: false,
        listener_shutdown_rdwr_fires_events: false,
        listener_write_einprogress: false,
        outq_enosys: false,
        outq_unsupported: false,
        poll_err_sticky: false,
        poll_err_when_closed: false,
        poll_hup_when_shut_both_ways: true,
        poll_in_counts_events: false,
        poll_no_hup: false,
        queued_fin_keeps_state: false,
        read_error_before_eof: false,
        read_without_fin_enotconn: false,
        reads_by_pbuf: false,
        reads_from_mailbox: false,
        refused_connect_error_twice: false,
        refused_connect_no_retry: false,
        refused_connect_resets: false,
        reset_always_econnreset: false,
        reset_leaves_no_error: false,
        shutdown_never_fails: false,
        shutdown_with_unread_resets: false,
        shutdown_rd_drops_data: false,
        shutdown_wr_after_fin_enotconn: false,
        smoltcp_segment_rules: false,
        sndbuf_enoprotoopt: false,
        time_wait_on_open_fd: false,
        unconnected_poll_empty: false,
        unconnected_poll_hup_only: false,
        unconnected_read_eagain: false,
        unconnected_shutdown_deferred: false,
        unconnected_shutdown_by_pcb: false,
        unconnected_write_enotconn: false,
        zero_length_read_at_once: false,
        zero_length_write_returns_zero: false,
    };
    const GVISOR: TcpProfile = TcpProfile {
        abort_needs_unacked_data: false,
        bare_fin_needs_receive_memory: false,
        close_is_half_close: false,
        closed_state_unavailable: true,
        closed_write_enotconn: false,
        connect_by_pcb: false,
        connect_ignores_shutdown: true,
        data_after_shutdown_aborts: true,
        delayed_fin_ack: false,
        errors_before_accept_not_polled: false,
        failed_write_clears_error: false,
        fin_wait2_timer: FinWait2Timer::Linger2,
        full_close_disarms_abort: false,
        full_close_resets_unread_when_open: false,
        full_close_unhooks_errors: false,
        inq_counts_drained: false,
        fixed_buffers: None,
        linger_not_inherited: true,
        listener_half_shutdown_enotconn: false,
        listener_inq_zero: false,
        listener_shutdown_keeps_listen: true,
        listener_shutdown_rdwr_fires_events: false,
        listener_write_einprogress: false,
        outq_enosys: false,
        outq_unsupported: true,
        poll_err_sticky: false,
        poll_err_when_closed: true,
        poll_hup_when_shut_both_ways: false,
        poll_in_counts_events: false,
        poll_no_hup: false,
        queued_fin_keeps_state: true,
        read_error_before_eof: true,
        read_without_fin_enotconn: false,
        reads_by_pbuf: false,
        reads_from_mailbox: false,
        refused_connect_error_twice: true,
        refused_connect_no_retry: true,
        refused_connect_resets: false,
        reset_always_econnreset: false,
        reset_leaves_no_error: false,
        shutdown_never_fails: false,
        shutdown_with_unread_resets: true,
        shutdown_rd_drops_data: false,
        shutdown_wr_after_fin_enotconn: false,
        smoltcp_segment_rules: false,
        sndbuf_enoprotoopt: false,
        time_wait_on_open_fd: true,
        unconnected_poll_empty: false,
        unconnected_poll_hup_only: true,
        unconnected_read_eagain: false,
        unconnected_shutdown_deferred: true,
        unconnected_shutdown_by_pcb: false,
        unconnected_write_enotconn: false,
        zero_length_read_at_once: false,
        zero_length_write_returns_zero: false,
    };
    const SMOLTCP: TcpProfile = TcpProfile {
        close_is_half_close: true,
        closed_state_unavailable: true,
        delayed_fin_ack: false,
        errors_before_accept_not_polled: false,
        fixed_buffers: Some(crate::exec::smoltcp::BUF as u32),
        read_without_fin_enotconn: true,
        reads_by_pbuf: false,
        reset_leaves_no_error: true,
        shutdown_never_fails: true,
        smoltcp_segment_rules: true,
        time_wait_on_open_fd: true,
        zero_length_read_at_once: true,
        ..TcpProfile::LINUX
    };
    const LWIP: TcpProfile = TcpProfile {
        abort_needs_unacked_data: true,
        bare_fin_needs_receive_memory: false,
        close_is_half_close: false,
        closed_state_unavailable: false,
        closed_write_enotconn: true,
        connect_by_pcb: true,
        connect_ignores_shutdown: false,
        data_after_shutdown_aborts: false,
        delayed_fin_ack: false,
        errors_before_accept_not_polled: true,
        failed_write_clears_error: true,
        fin_wait2_timer: FinWait2Timer::LwipSlowTimer,
        full_close_disarms_abort: true,
        full_close_resets_unread_when_open: true,
        full_close_unhooks_errors: true,
        inq_counts_drained: true,
        fixed_buffers: Some(crate::exec::lwip::TCP_SND_BUF),
        linger_not_inherited: false,
        listener_half_shutdown_enotconn: true,
        listener_inq_zero: true,
        listener_shutdown_keeps_listen: false,
        listener_shutdown_rdwr_fires_events: true,
        listener_write_einprogress: true,
        outq_enosys: true,
        outq_unsupported: false,
        poll_err_sticky: true,
        poll_err_when_closed: false,
        poll_hup_when_shut_both_ways: true,
        poll_in_counts_events: true,
        poll_no_hup: true,
        queued_fin_keeps_state: false,
        read_error_before_eof: false,
        read_without_fin_enotconn: false,
        reads_by_pbuf: true,
        reads_from_mailbox: true,
        refused_connect_error_twice: false,
        refused_connect_no_retry: false,
        refused_connect_resets: true,
        reset_always_econnreset: true,
        reset_leaves_no_error: false,
        shutdown_never_fails: false,
        shutdown_rd_drops_data: true,
        shutdown_with_unread_resets: false,
        shutdown_wr_after_fin_enotconn: true,
        smoltcp_segment_rules: false,
        sndbuf_enoprotoopt: true,
        time_wait_on_open_fd: true,
        unconnected_poll_empty: true,
        unconnected_poll_hup_only: false,
        unconnected_read_eagain: true,
        unconnected_shutdown_deferred: false,
        unconnected_shutdown_by_pcb: true,
        unconnected_write_enotconn: true,
        zero_length_read_at_once: false,
        zero_length_write_returns_zero: true,
    };
}

/// What smoltcp can be asked: its API has no SO_ERROR, no urgent data, no SO_LINGER, no
/// buffer sizes after the socket is made, no way to close the receive half, no accept
/// queue (so no `start listening`, and `connect` and `accept` belong to it), and no
/// Unix sockets (see the mapping in [`crate::exec::smoltcp`]).
const SMOLTCP_SURFACE: Surface = {
    use crate::step::{CallKind, Shut, Start};
    use crate::transport::Transport;
    Surface {
        transports: &[Transport::Tcp4, Transport::Tcp6],
        starts: &[Start::Connected],
        cannot_call: &[
            CallKind::Error,
            CallKind::Connect,
            CallKind::Accept,
            CallKind::Linger,
            CallKind::WriteOob,
            CallKind::ReadOob,
            CallKind::RcvBuf,
            CallKind::SndBuf,
        ],
        cannot_shut: &[Shut::Rd, Shut::RdWr],
        // smoltcp sends only when polled: its segments can wait for a step.
        networks: &[crate::step::Network::Instant, crate::step::Network::Held],
        // Its retransmission timer (Timer::Retransmit) is not modelled.
        held_sleep: false,
    }
};

/// Unix-socket-only differences (named in [`differences`] as `unix.FIELD`). Fields are
/// in alphabetical order, the order in which the profile's JSON lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct UnixProfile {
    /// A stream read (not MSG_PEEK) that finds a consumed OOB byte's empty skb at the
    /// head of the queue frees it and ends there: with what it copied, or, if nothing,
    /// as on an empty queue (EAGAIN), even with data or a newer OOB byte behind it.
    /// Linux 6.1's manage_oob (before 6.10's 93c99f21db36 "af_unix: Don't stop
    /// recv(MSG_DONTWAIT) if consumed OOB skb is at the head" and 36893ef0b661 "af_unix:
    /// Don't stop recv() at consumed ex-OOB skb"): `!unix_skb_len(skb) && !(flags &
    /// MSG_PEEK)` unlinks it and returns NULL.
    pub consumed_oob_ends_read: bool,
    /// SIOCINQ on a stream adds up the unread bytes of the skbs queued (Linux 6.1's
    /// unix_inq_len); since 6.17 (f4e1fb04c123 "af_unix: Use cached value for
    /// SOCK_STREAM in unix_inq_len()") it returns a cached count that a read dropping a
    /// pending OOB byte does not lower.
    pub inq_counts_queue: bool,
    /// Closing a listener with a connection still queued leaves ECONNRESET for that
    /// connection's client (Linux: unix_release_sock of the embryo); otherwise the
    /// client sees only its peer gone (EOF).
    pub listener_close_resets_queued: bool,
    /// How the unread data a socket sent is counted against its send buffer: what
    /// decides partial writes, EAGAIN, POLLOUT and SIOCOUTQ.
    pub memory: UnixMemory,
    /// After the peer closes, SIOCOUTQ still counts what the peer had not read (Linux
    /// frees it with the peer: 0).
    pub outq_outlives_reader: bool,
    /// A seqpacket record too long for the send buffer, on a socket shut for writing,
    /// fails with EPIPE (Linux: EMSGSIZE, since unix_dgram_sendmsg checks the length
    /// before the connection).
    pub oversize_record_after_shutdown_epipe: bool,
    /// MSG_PEEK on a stream goes on past a consumed OOB byte's empty skb, and copies
    /// the skb after it, a pending OOB byte included, as ordinary data (Linux 6.1:
    /// unix_stream_read_generic's skip loop steps over the empty skb to the next without
    /// manage_oob; 6.10's b94038d841a9 "af_unix: Stop recv(MSG_PEEK) at consumed OOB
    /// skb" stops there). A consumed skb at the head is passed the same way.
    pub peek_passes_consumed_oob: bool,
    /// MSG_PEEK on a stream socket returns at most what is left of the oldest queued
    /// write (gVisor); Linux's unix_stream_read_generic peeks across them, as a read
    /// reads across them.
    pub peek_stops_at_one_write: bool,
    /// poll reports POLLHUP when both shutdown bits are set (our own shutdowns, the
    /// peer's, or the peer's close).
    pub poll_hup: bool,
    /// Where closing with unread data leaves the peer's ECONNRESET.
    pub reset_on_unread_close: UnixReset,
    /// poll reports OUT on a socket shut for sending (its own shutdown(wr), or the
    /// peer's shutdown(rd) or close), however full its send buffer (Linux's
    /// unix_writable looks at the buffer alone).
    pub shut_queue_writable: bool,
    /// shutdown of a socket with no peer (never connected, or the listener) fails with
    /// ENOTCONN and changes nothing (Linux: unix_shutdown ORs the bits in, and a
    /// listener shut for reading refuses new connections).
    pub shutdown_needs_connection: bool,
    /// SIOCINQ on a socket with no peer (never connected, or the listener) fails with
    /// ENOTCONN (Linux's unix_inq_len: 0 bytes, or EINVAL for a listener).
    pub unconnected_inq_enotconn: bool,
    /// A socket with no peer (never connected, or refused) polls nothing at all (Linux:
    /// OUT|HUP, from TCP_CLOSE and unix_writable).
    pub unconnected_poll_empty: bool,
    /// A read on a stream socket with no peer (never connected, or the listener) says
    /// ENOTCONN (Linux: EINVAL from unix_stream_read_generic's state check).
    pub unconnected_stream_read_enotconn: bool,
    /// A zero-length receive returns 0 before the socket is looked at (Linux: it takes
    /// a pending error, says EAGAIN on an empty queue, and on seqpacket consumes a
    /// record).
    pub zero_length_recv_returns_zero: bool,
    /// A zero-length send reaches the socket, with all its checks (and, on seqpacket,
    /// queues an empty record); if not, it returns 0 before the socket sees it.
    pub zero_length_send_reaches_socket: bool,
}

/// The timer that ends a connection closed in FIN_WAIT2 (the peer never sends its FIN).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FinWait2Timer {
    /// Linux and gVisor: TCP_LINGER2, which the executor sets to 1 s on every TCP
    /// socket, from the close (tcp_close's FIN_WAIT2 branch, or tcp_rcv_state_process
    /// when the ACK of the FIN arrives; it may be delayed up to TCP_DELACK_MAX).
    Linger2,
    /// lwIP's tcp_slowtmr: TCP_FIN_WAIT_TIMEOUT (20 s) in 500 ms ticks, counted from
    /// pcb->tmr, the last segment received before the read side closed (tcp_process
    /// does not update it once TF_RXCLOSED is set, and close sets it first), for a pcb
    /// in FIN_WAIT_2 with TF_RXCLOSED: closed, or fully shut.
    LwipSlowTimer,
}

impl FinWait2Timer {
    /// Milliseconds after the timer starts from which the connection may be gone, and
    /// by which it certainly is: Linux's one second, plus the delayed ACK that may
    /// start the timer up to 200 ms late and the timer wheel's slack; lwIP's removal
    /// when tcp_ticks - tmr first exceeds 40 ticks, 20 to 20.5 s after the segment,
    /// with the executor's 10 ms timer steps.
    pub const fn window_ms(self) -> (u64, u64) {
        match self {
            FinWait2Timer::Linger2 => (
                crate::model::tcp::FIN_WAIT2_TIMEOUT_MS,
                crate::model::tcp::FIN_WAIT2_GONE_MS,
            ),
            FinWait2Timer::LwipSlowTimer => (20_000, 20_510),
        }
    }
}

/// Where a Unix socket's close with unread data leaves ECONNRESET for the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum UnixReset {
    /// In the peer's `sk_err` (Linux, unix_release_sock): POLLERR until taken, taken
    /// once by SO_ERROR, a read, or (seqpacket) a send.
    SockError,
    /// As a mark on the peer's receive queue (gVisor, queue.CloseUnread): once the queue
    /// is drained every read fails with ECONNRESET instead of reading EOF; SO_ERROR,
    /// poll and sends never see it.
    ReadQueue,
}

impl UnixProfile {
    const LINUX: UnixProfile = UnixProfile {
        consumed_oob_ends_read: false,
        inq_counts_queue: false,
        listener_close_resets_queued: true,
        memory: UnixMemory::Truesize,
        outq_outlives_reader: false,
        oversize_record_after_shutdown_epipe: false,
        peek_passes_consumed_oob: false,
        peek_stops_at_one_write: false,
        poll_hup: true,
        reset_on_unread_close: UnixReset::SockError,
        shut_queue_writable: false,
        shutdown_needs_connection: false,
        unconnected_inq_enotconn: false,
        unconnected_poll_empty: false,
        unconnected_stream_read_enotconn: false,
        zero_length_recv_returns_zero: false,
        zero_length_send_reaches_socket: true,
    };
    const GVISOR: UnixProfile = UnixProfile {
        consumed_oob_ends_read: false,
        inq_counts_queue: false,
        listener_close_resets_queued: false,
        memory: UnixMemory::Bytes,
        outq_outlives_reader: true,
        oversize_record_after_shutdown_epipe: true,
        peek_passes_consumed_oob: false,
        peek_stops_at_one_write: true,
        poll_hup: false,
        reset_on_unread_close: UnixReset::ReadQueue,
        shut_queue_writable: true,
        shutdown_needs_connection: true,
        unconnected_inq_enotconn: true,
        unconnected_poll_empty: true,
        unconnected_stream_read_enotconn: true,
        zero_length_recv_returns_zero: true,
        zero_length_send_reaches_socket: false,
    };
}

impl Profile {
    /// The host Linux kernel.
    pub const fn linux() -> Profile {
        Profile {
            platform: Platform::Linux,
            // The host kernel's segments can be held between two namespaces joined by
            // TUN devices (crate::exec::wire).
            surface: Surface {
                networks: &[crate::step::Network::Instant, crate::step::Network::Held],
                // The held model runs Linux's retransmission timer.
                held_sleep: true,
                ..Surface::ALL
            },
            oob_ignored: false,
            poll_rdhup: true,
            sigpipe_on_epipe: true,
            tcp: TcpProfile::LINUX,
            unix: UnixProfile::LINUX,
        }
    }

    /// gVisor's netstack (runsc), release 20221219 as packaged by Debian.
    pub const fn gvisor() -> Profile {
        Profile {
            platform: Platform::Gvisor,
            surface: Surface::ALL,
            oob_ignored: true,
            poll_rdhup: false,
            sigpipe_on_epipe: false,
            tcp: TcpProfile::GVISOR,
            unix: UnixProfile::GVISOR,
        }
    }

    /// The smoltcp crate's TCP (see [`crate::exec::smoltcp`]): `start connected` over
    /// tcp4 and tcp6, and the calls its API has a counterpart for.
    pub const fn smoltcp() -> Profile {
        Profile {
            platform: Platform::Smoltcp,
            surface: SMOLTCP_SURFACE,
            oob_ignored: false,
            poll_rdhup: true,
            sigpipe_on_epipe: false,
            tcp: TcpProfile::SMOLTCP,
            unix: UnixProfile::LINUX,
        }
    }

    /// lwIP 2.1.3 (Debian's liblwip-dev), in-process: TCP only.
    pub const fn lwip() -> Profile {
        Profile {
            platform: Platform::Lwip,
            surface: Surface {
                transports: &[Transport::Tcp4, Transport::Tcp6],
                starts: &Start::ALL,
                cannot_call: &[],
                cannot_shut: &[],
                networks: &[crate::step::Network::Instant],
                held_sleep: false,
            },
            oob_ignored: true,
            poll_rdhup: false,
            sigpipe_on_epipe: false,
            tcp: TcpProfile::LWIP,
            unix: UnixProfile::LINUX,
        }
    }

    /// Linux 6.1 (Debian's User-mode Linux, 6.1.176): Linux's profile but for the
    /// af_unix MSG_OOB fixes of 6.10, the cached SIOCINQ of 6.17 and the bare FIN taken
    /// under memory pressure of 6.10, which 6.1 lacks.
    pub const fn linux_6_1() -> Profile {
        let mut p = Profile::linux();
        p.platform = Platform::Linux61;
        // The guest's segments stay inside User-mode Linux: nothing can hold them.
        p.surface = Surface::ALL;
        p.tcp.bare_fin_needs_receive_memory = true;
        p.unix.consumed_oob_ends_read = true;
        p.unix.inq_counts_queue = true;
        p.unix.peek_passes_consumed_oob = true;
        p
    }

    /// The profile of a platform.
    pub fn of(p: Platform) -> Profile {
        match p {
            Platform::Linux => Profile::linux(),
            Platform::Gvisor => Profile::gvisor(),
            Platform::Smoltcp => Profile::smoltcp(),
            Platform::Lwip => Profile::lwip(),
            Platform::Linux61 => Profile::linux_6_1(),
        }
    }

    /// The named differences between this profile and Linux's.
    pub fn differences(&self) -> Vec<&'static Difference> {
        let linux = serde_json::to_value(Profile::linux()).expect("profile as JSON");
        let mine = serde_json::to_value(self).expect("profile as JSON");
        let field = |v: &serde_json::Value, name: &str| {
            v.pointer(&format!("/{}", name.replace('.', "/"))).cloned()
        };
        differences()
            .filter(|d| field(&linux, d.name) != field(&mine, d.name))
            .collect()
    }
}

/// Every known difference, by profile field: common ones, then TCP's, then Unix's.
pub fn differences() -> impl Iterator<Item = &'static Difference> {
    COMMON_DIFFERENCES
        .iter()
        .chain(TCP_DIFFERENCES)
        .chain(UNIX_DIFFERENCES)
}

/// Differences in TCP only: fields of [`TcpProfile`], named `tcp.FIELD`, in field order.
pub const TCP_DIFFERENCES: &[Difference] = &[
    Difference {
        name: "tcp.abort_needs_unacked_data",
        summary: "on lwIP an abort (SO_LINGER {on, 0}, then close) sends RST only while data of its own is unsent or unacknowledged; with everything acknowledged it is a graceful close (FIN), where Linux resets; a shutdown that shuts the last open direction is such a close too, and aborts the same way",
        evidence: "tcp-abort-with-everything-acknowledged.cfz",
    },
    Difference {
        name: "tcp.bare_fin_needs_receive_memory",
        summary: "on Linux 6.1 a FIN that finds the receive queue past a receive buffer made smaller is dropped like data, and the reader stays ESTABLISHED (no RDHUP, not even once it has read everything) until the writer's retransmission timer brings the FIN again; Linux takes it at once since 6.10 (commit 2bd99aef1b19, tcp: accept bare FIN packets under memory pressure)",
        evidence: "tcp-fin-over-a-shrunk-receive-buffer.cfz",
    },
    Difference {
        name: "tcp.close_is_half_close",
        summary: "smoltcp's close() only closes the sending half: a FIN even with unread data, and the closed socket goes on taking data, so a peer's writes after it succeed and it reads EOF; Linux resets the connection for unread or later data",
        evidence: "tcp-smoltcp-close-is-half-close.cfz",
    },
    Difference {
        name: "tcp.closed_state_unavailable",
        summary: "gVisor's netlink serves NETLINK_ROUTE but not NETLINK_SOCK_DIAG, so what it holds for a connection whose fd is closed cannot be asked (state says n/a); Linux's sock_diag reports the orphan's state, TIME_WAIT, or gone",
        evidence: "tcp-four-way-close-followed-to-the-end.cfz",
    },
    Difference {
        name: "tcp.closed_write_enotconn",
        summary: "on lwIP a write on a connection that can no longer send (after its own shutdown(wr), or once the connection is closed or reset and the error was taken) fails with ENOTCONN (tcp_write_checks: ERR_CONN); Linux says EPIPE",
        evidence: "tcp-write-after-own-shutdown-wr.cfz",
    },
    Difference {
        name: "tcp.connect_by_pcb",
        summary: "a connect on a connected socket says EISCONN on lwIP at once, the first after a non-blocking connect too, and ENOTCONN once the netconn let its pcb go (reset, ended, fully shut); Linux returns 0 once after EINPROGRESS, then EISCONN in every state",
        evidence: "tcp-connect-twice.cfz",
    },
    Difference {
        name: "tcp.connect_ignores_shutdown",
        summary: "after a refused connect and a shutdown, gVisor's connects say ECONNREFUSED, then ECONNABORTED, as without the shutdown; Linux's inet_shutdown makes the SS_CONNECTING socket SS_DISCONNECTING, so every later connect is EINVAL and the error stays pending",
        evidence: "tcp-connect-refused-then-shutdown.cfz",
    },
    Difference {
        name: "tcp.data_after_shutdown_aborts",
        summary: "gVisor answers data arriving after shutdown(rd) in FIN_WAIT with RST and ECONNABORTED as its own error, where Linux says ECONNRESET",
        evidence: "tcp-data-after-full-shutdown-aborts.cfz",
    },
    Difference {
        name: "tcp.delayed_fin_ack",
        summary: "gVisor, smoltcp and lwIP ACK a FIN at once, so its sender is in FIN_WAIT2 right away; Linux delays that ACK and the sender may still be in FIN_WAIT1",
        evidence: "tcp-fin-ack-is-delayed.cfz",
    },
    Difference {
        name: "tcp.errors_before_accept_not_polled",
        summary: "a connection reset while it waited to be accepted polls without ERR on lwIP once accepted (its socket is made by lwip_accept with no error event), although SO_ERROR and reads report the reset; Linux polls ERR while the error is pending",
        evidence: "tcp-accept-after-client-abort.cfz",
    },
    Difference {
        name: "tcp.failed_write_clears_error",
        summary: "on gVisor a write that fails on a connection closed without error (RST in CLOSE_WAIT) returns EPIPE and leaves the pending EPIPE for SO_ERROR; Linux's write takes it",
        evidence: "tcp-failed-write-keeps-no-error.cfz",
    },
    Difference {
        name: "tcp.fin_wait2_timer",
        summary: "lwIP removes a connection closed in FIN_WAIT2 20 to 20.5 s after the last segment it received before its read side closed (tcp_slowtmr, TCP_FIN_WAIT_TIMEOUT), a fully shut one too, so 1.8 s after the close the peer's FIN is still acknowledged; Linux's orphan lasts TCP_LINGER2 (1 s here) from the close and then answers that FIN with RST",
        evidence: "tcp-fin-wait2-timeout.cfz",
    },
    Difference {
        name: "tcp.fixed_buffers",
        summary: "smoltcp's and lwIP's buffers are fixed (smoltcp: 64 KiB each way here; lwIP: TCP_SND_BUF and TCP_WND, 65,535 bytes): a write takes at most what the send buffer has free when it is called (ok 65536, or 65535 on lwIP, of 212,000), the peer's window is its free receive buffer; Linux autotunes and takes a million bytes at once",
        evidence: "tcp-smoltcp-fixed-buffers.cfz",
    },
    Difference {
        name: "tcp.full_close_disarms_abort",
        summary: "on lwIP an abort after a shutdown that shut both directions sends no RST: that shutdown already closed the connection and let its pcb go, so the close finds nothing to abort; Linux resets",
        evidence: "tcp-abort-after-full-shutdown.cfz",
    },
    Difference {
        name: "tcp.full_close_resets_unread_when_open",
        summary: "lwIP resets on a full close (close, or a shutdown leaving both directions shut) only in ESTABLISHED or CLOSE_WAIT, and there also for data shutdown(rd) threw away (tcp_close_shutdown: rcv_wnd short of its maximum); Linux's close resets with unread data in any open state, its shutdown never",
        evidence: "tcp-shutdown-rd-then-wr-with-unread-data.cfz",
    },
    Difference {
        name: "tcp.full_close_unhooks_errors",
        summary: "after a shutdown that leaves both directions shut, lwIP's socket hears no later RST (the netconn unhooked its error callback and let the pcb go): SO_ERROR stays 0; Linux's says ECONNRESET",
        evidence: "tcp-reset-after-full-shutdown-is-not-told.cfz",
    },
    Difference {
        name: "tcp.inq_counts_drained",
        summary: "FIONREAD on lwIP still counts the unread bytes a shutdown(rd) threw away (netconn_drain does not lower recv_avail); Linux counts what can be read",
        evidence: "tcp-peek-stops-at-one-pbuf.cfz",
    },
    Difference {
        name: "tcp.linger_not_inherited",
        summary: "a socket accepted from a listener with SO_LINGER {on, 0} closes with RST on Linux (the child copies the listener's options) and with a FIN on gVisor, which does not pass SO_LINGER on",
        evidence: "tcp-listener-linger-zero-is-inherited.cfz",
    },
    Difference {
        name: "tcp.listener_half_shutdown_enotconn",
        summary: "shutdown(rd) or shutdown(wr) of a TCP listener fails with ENOTCONN on lwIP and the listener goes on listening (lwip_netconn_do_close: no half shutdown in LISTEN); Linux ignores shutdown(wr) and stops the listener on shutdown(rd)",
        evidence: "tcp-listener-shutdown-rd.cfz",
    },
    Difference {
        name: "tcp.listener_inq_zero",
        summary: "FIONREAD on a TCP listener says 0 on lwIP (lwip_ioctl reads the netconn's recv_avail whatever it is); Linux says EINVAL",
        evidence: "tcp-listener-read-write.cfz",
    },
    Difference {
        name: "tcp.listener_shutdown_keeps_listen",
        summary: "shutdown(rd) of a TCP listener resets its queued connections and makes accept EINVAL on both, but gVisor's listener stays LISTEN (poll -) where Linux's becomes a plain CLOSE socket (poll OUT|HUP)",
        evidence: "tcp-listener-shutdown-rdwr-queued.cfz",
    },
    Difference {
        name: "tcp.listener_shutdown_rdwr_fires_events",
        summary: "a TCP listener shut down both ways polls IN|OUT|ERR for good on lwIP (lwip_netconn_do_close_internal closes its pcb and fires the error, receive and send events); Linux's becomes a plain CLOSE socket polling OUT|HUP",
        evidence: "tcp-listener-shutdown-rdwr-fires-events.cfz",
    },
    Difference {
        name: "tcp.listener_write_einprogress",
        summary: "a write on a TCP listener fails with EINPROGRESS on lwIP (lwip_netconn_do_write: the netconn is not idle); Linux says EPIPE",
        evidence: "tcp-listener-read-write.cfz",
    },
    Difference {
        name: "tcp.outq_enosys",
        summary: "lwIP's lwip_ioctl knows FIONREAD and FIONBIO only: SIOCOUTQ fails with ENOSYS; Linux says how many bytes the peer has not acknowledged",
        evidence: "tcp-outq-after-write.cfz",
    },
    Difference {
        name: "tcp.outq_unsupported",
        summary: "SIOCOUTQ on a TCP socket fails with ENOPROTOOPT on gVisor; Linux says how many bytes the peer has not acknowledged",
        evidence: "tcp-outq-after-write.cfz",
    },
    Difference {
        name: "tcp.poll_err_sticky",
        summary: "lwIP's poll reports ERR from the first error event on (a reset, or a shutdown that closed both directions) and never clears it (the socket's errevent), even after SO_ERROR took the error; Linux only while an error is pending",
        evidence: "tcp-reads-and-poll-after-reset.cfz",
    },
    Difference {
        name: "tcp.poll_err_when_closed",
        summary: "gVisor's poll reports ERR for every CLOSE or TIME_WAIT socket, even after a graceful close or once the error was read; Linux only while an error is pending",
        evidence: "tcp-poll-after-graceful-close.cfz",
    },
    Difference {
        name: "tcp.poll_hup_when_shut_both_ways",
        summary: "gVisor's poll reports HUP only once the connection is CLOSE or TIME_WAIT; Linux as soon as both directions are shut",
        evidence: "tcp-poll-hup-when-shut-both-ways.cfz",
    },
    Difference {
        name: "tcp.poll_in_counts_events",
        summary: "lwIP's poll says IN while its receive-event count (rcvevent) is above zero, not while something is readable: after EOF and the close message of an ended LAST_ACK are read, IN is gone although reads still answer; after a reset's marker is read, IN stays; Linux: IN whenever the read side is shut",
        evidence: "tcp-both-shutdown-wr.cfz",
    },
    Difference {
        name: "tcp.poll_no_hup",
        summary: "lwIP's poll (lwip_pollscan) knows IN, OUT and ERR only: never HUP, even after a reset; Linux reports HUP once both directions are shut",
        evidence: "tcp-reads-and-poll-after-reset.cfz",
    },
    Difference {
        name: "tcp.queued_fin_keeps_state",
        summary: "a shutdown(wr) whose FIN waits behind data the peer's window does not take yet leaves gVisor's socket ESTABLISHED until the FIN is sent; Linux's is FIN_WAIT1 at once",
        evidence: "tcp-shutdown-wr-behind-a-full-window.cfz",
    },
    Difference {
        name: "tcp.read_error_before_eof",
        summary: "after an abort or reset, gVisor's read returns the pending error before EOF even when the peer's FIN had arrived; Linux returns EOF (seen after tcp.shutdown_with_unread_resets)",
        evidence: "tcp-shutdown-rdwr-with-unread-data.cfz",
    },
    Difference {
        name: "tcp.read_without_fin_enotconn",
        summary: "after the peer's abort, a read with nothing queued fails with ENOTCONN on smoltcp every time (RecvError::InvalidState); Linux returns ECONNRESET once, then EOF",
        evidence: "tcp-smoltcp-abort-leaves-no-error.cfz",
    },
    Difference {
        name: "tcp.reads_by_pbuf",
        summary: "lwIP reads data pbuf by pbuf, one per segment: MSG_PEEK returns only the pbuf at the read head (33 of two writes of 33 and 1), and the rest of a pbuf the socket began (lastdata) stays readable after shutdown(rd) drained the mailbox; Linux peeks across writes and keeps all the data",
        evidence: "tcp-peek-stops-at-one-pbuf.cfz",
    },
    Difference {
        name: "tcp.reads_from_mailbox",
        summary: "lwIP's reads take data, then the FIN's marker, then a reset's marker from the netconn's mailbox: after a reset a read says ECONNRESET even where the FIN had arrived first (Linux: EOF), a second read takes the pending error, and once EOF was read every read says ENOTCONN (Linux: EOF again); the end of LAST_ACK is told the same way (ERR_CLSD: SO_ERROR ENOTCONN)",
        evidence: "tcp-motivating-case.cfz",
    },
    Difference {
        name: "tcp.refused_connect_error_twice",
        summary: "gVisor keeps a refused connect's ECONNREFUSED twice (hardError and lastError): after a write, a read or SO_ERROR took it, SO_ERROR reports it once more; Linux reports it once",
        evidence: "tcp-connect-refused-error-twice.cfz",
    },
    Difference {
        name: "tcp.refused_connect_no_retry",
        summary: "after a failed connect (refused, or reset before a second connect asked how it ended), gVisor's later connects all fail (ECONNABORTED) and a read says EOF; Linux's connect after the failed one tries again (EINPROGRESS: refused again, or a new connection; tcp-connect-after-reset.cfz)",
        evidence: "tcp-connect-refused.cfz",
    },
    Difference {
        name: "tcp.refused_connect_resets",
        summary: "a refused connect on lwIP is a reset (err_tcp gets ERR_RST in SYN_SENT): SO_ERROR and reads say ECONNRESET, poll IN|OUT|ERR for good, and later connects and reads ENOTCONN; Linux says ECONNREFUSED once and lets the socket connect again",
        evidence: "tcp-connect-refused.cfz",
    },
    Difference {
        name: "tcp.reset_always_econnreset",
        summary: "an RST leaves ECONNRESET on lwIP in every state (err_tcp passes ERR_RST), so the article's second write fails with ECONNRESET; Linux leaves EPIPE for an RST in CLOSE_WAIT",
        evidence: "tcp-motivating-case.cfz",
    },
    Difference {
        name: "tcp.reset_leaves_no_error",
        summary: "smoltcp keeps no socket error: after the peer's RST a write says EPIPE and poll never says ERR; Linux's next call gets ECONNRESET (EPIPE in CLOSE_WAIT) and poll says ERR until then",
        evidence: "tcp-smoltcp-abort-leaves-no-error.cfz",
    },
    Difference {
        name: "tcp.shutdown_never_fails",
        summary: "shutdown(wr), smoltcp's close(), returns nothing and so never fails: after a reset or in TIME_WAIT it is ok and does nothing; Linux says ENOTCONN",
        evidence: "tcp-smoltcp-abort-leaves-no-error.cfz",
    },
    Difference {
        name: "tcp.shutdown_with_unread_resets",
        summary: "on gVisor a shutdown that leaves both directions shut with unread data aborts with RST (ECONNABORTED here, ECONNRESET at the peer), even in TIME_WAIT; Linux sends a FIN and keeps the data",
        evidence: "tcp-shutdown-rdwr-with-unread-data.cfz",
    },
    Difference {
        name: "tcp.shutdown_rd_drops_data",
        summary: "lwIP's shutdown(rd) drains the netconn's mailbox: unread data is gone, reads say ENOTCONN, and data arriving later aborts the connection (RST, ECONNABORTED here); Linux keeps the data readable and goes on queueing",
        evidence: "tcp-shutdown-rd-then-more-data.cfz",
    },
    Difference {
        name: "tcp.shutdown_wr_after_fin_enotconn",
        summary: "on lwIP a second shutdown(wr), or any shutdown once the connection is closed or reset, fails with ENOTCONN (tcp_shutdown: ERR_CONN); Linux's succeeds while the socket is not CLOSE",
        evidence: "tcp-write-after-own-shutdown-wr.cfz",
    },
    Difference {
        name: "tcp.smoltcp_segment_rules",
        summary: "under network held smoltcp processes arriving segments by its own rules (Socket::process): a FIN that arrives before its data is ignored and must come again, where Linux keeps it in the out-of-order queue and takes it when the data arrives; an old ACK drops the whole segment; SIOCOUTQ leaves the FIN out",
        evidence: "wire/fin-overtakes-data.cfz",
    },
    Difference {
        name: "tcp.sndbuf_enoprotoopt",
        summary: "lwIP has no SO_SNDBUF (lwip_setsockopt_impl: ENOPROTOOPT; its send buffer is TCP_SND_BUF, 65,535 bytes here); Linux sets the send buffer",
        evidence: "tcp-sndbuf-is-unknown.cfz",
    },
    Difference {
        name: "tcp.time_wait_on_open_fd",
        summary: "TCP_INFO on an open fd whose connection is in TIME_WAIT says TIME_WAIT on gVisor, smoltcp and lwIP (their socket holds the TIME_WAIT connection), CLOSE on Linux",
        evidence: "tcp-time-wait-state-on-open-fd.cfz",
    },
    Difference {
        name: "tcp.unconnected_poll_empty",
        summary: "a TCP socket that never connected polls nothing on lwIP (no send event until connected), OUT|HUP on Linux",
        evidence: "tcp-never-connected-write-read.cfz",
    },
    Difference {
        name: "tcp.unconnected_poll_hup_only",
        summary: "a TCP socket that never connected polls HUP on gVisor, OUT|HUP on Linux",
        evidence: "tcp-never-connected-write-read.cfz",
    },
    Difference {
        name: "tcp.unconnected_read_eagain",
        summary: "a read on a TCP socket that never connected says EAGAIN on lwIP (its mailbox is empty), ENOTCONN on Linux",
        evidence: "tcp-never-connected-write-read.cfz",
    },
    Difference {
        name: "tcp.unconnected_shutdown_deferred",
        summary: "Linux applies a failed (ENOTCONN) shutdown of a never-connected TCP socket at once: poll then says IN|RDHUP, a read EOF, and a later connection reads a false EOF; gVisor applies it only at the next shutdown after connecting (a FIN then, even for shutdown rd)",
        evidence: "tcp-stale-shutdown-rd-false-eof.cfz",
    },
    Difference {
        name: "tcp.unconnected_shutdown_by_pcb",
        summary: "on lwIP a shutdown of a TCP socket that never connected acts on its CLOSED pcb: rd succeeds (poll IN, reads ENOTCONN, the later connection is shut for reading), wr alone is ENOTCONN and leaves nothing, rdwr closes the pcb (poll IN|OUT|ERR, later calls ENOTCONN); Linux says ENOTCONN and keeps the bits",
        evidence: "tcp-never-connected-shutdown.cfz",
    },
    Difference {
        name: "tcp.unconnected_write_enotconn",
        summary: "a write on a TCP socket that never connected says ENOTCONN on lwIP, EPIPE (and SIGPIPE) on Linux",
        evidence: "tcp-never-connected-write-read.cfz",
    },
    Difference {
        name: "tcp.zero_length_read_at_once",
        summary: "a zero-length read on smoltcp looks at the state only: 0 bytes at once while the receive half is open (Linux: EAGAIN with nothing queued) and EOF once the peer's FIN is read (Linux: 0)",
        evidence: "tcp-smoltcp-zero-length-read.cfz",
    },
    Difference {
        name: "tcp.zero_length_write_returns_zero",
        summary: "a zero-length write returns 0 on lwIP in every state, a listener's and a shut socket's too (netconn_write_vectors_partly returns before the connection is looked at); Linux checks the state first (EPIPE once shut for writing)",
        evidence: "tcp-zero-length-write-after-shutdown.cfz",
    },
];

/// Differences in Unix sockets only: fields of [`UnixProfile`], named `unix.FIELD`, in
/// field order.
pub const UNIX_DIFFERENCES: &[Difference] = &[
    Difference {
        name: "unix.consumed_oob_ends_read",
        summary: "on Linux 6.1 a stream read that meets a consumed OOB byte's empty skb at the head of the queue frees it and stops: with what it copied, or with EAGAIN though data follows; since 6.10 it passes the skb when nothing was copied or a newer OOB byte is pending",
        evidence: "ported/linux-af_unix-msg_oob-ex_oob_break.cfz",
    },
    Difference {
        name: "unix.inq_counts_queue",
        summary: "on Linux 6.1 SIOCINQ on a stream adds up the unread bytes queued; since 6.17 it is a cached count that a read dropping a pending OOB byte leaves one too high",
        evidence: "unix-inq-after-a-read-drops-the-oob-byte.cfz",
    },
    Difference {
        name: "unix.listener_close_resets_queued",
        summary: "closing a Unix listener with a connection still queued gives that connection's client ECONNRESET on Linux; on gVisor it is an ordinary close of the server side: EOF, or a reset only if the client's data was unread (gVisor issue 12576)",
        evidence: "unix-listener-close-queued.cfz",
    },
    Difference {
        name: "unix.memory",
        summary: "a Unix socket's unread sent data counts against its send buffer as skb memory on Linux (a write of 1,000,000 bytes with SO_SNDBUF 4096 takes 8,064, SIOCOUTQ says 9,728, and a partly read skb frees nothing) and as bytes on gVisor (it takes 8,192, SIOCOUTQ says 8,192, and the first byte read of a write frees all of it)",
        evidence: "unix-sndbuf-fills-in-skbs.cfz",
    },
    Difference {
        name: "unix.outq_outlives_reader",
        summary: "after the reader closes with data unread, SIOCOUTQ on the writer still counts that data on gVisor (its write queue is not freed); Linux frees it with the reader and says 0",
        evidence: "unix-outq-after-reader-closes.cfz",
    },
    Difference {
        name: "unix.oversize_record_after_shutdown_epipe",
        summary: "a seqpacket write longer than the send buffer takes, after shutdown(wr), fails with EPIPE on gVisor and with EMSGSIZE on Linux (which checks the length first)",
        evidence: "seqpacket-oversize-record.cfz",
    },
    Difference {
        name: "unix.peek_passes_consumed_oob",
        summary: "on Linux 6.1 MSG_PEEK on a stream goes on past a consumed OOB byte's empty skb and copies a pending OOB byte behind it as ordinary data; since 6.10 a peek stops there as a read does",
        evidence: "unix-peek-passes-a-consumed-oob-byte.cfz",
    },
    Difference {
        name: "unix.peek_stops_at_one_write",
        summary: "MSG_PEEK on a Unix stream socket returns only what is left of the oldest queued write on gVisor; Linux peeks across writes, as a read reads across them",
        evidence: "unix-peek-across-writes.cfz",
    },
    Difference {
        name: "unix.poll_hup",
        summary: "gVisor never reports POLLHUP on a Unix stream or seqpacket socket, even shut down both ways or with the peer gone: only IN and OUT",
        evidence: "unix-hup-needs-both-shutdown-bits.cfz",
    },
    Difference {
        name: "unix.reset_on_unread_close",
        summary: "gVisor gives no socket error for a peer's close with unread data: no POLLERR, SO_ERROR 0, sends say EPIPE, but once the queue is drained every read fails with ECONNRESET instead of reading EOF",
        evidence: "unix-reset-is-read-once.cfz",
    },
    Difference {
        name: "unix.shut_queue_writable",
        summary: "a Unix socket whose send buffer is full polls OUT on gVisor once it is shut for sending (its write queue is closed); Linux's poll looks at the buffer alone and says nothing",
        evidence: "unix-full-buffer-then-shutdown.cfz",
    },
    Difference {
        name: "unix.shutdown_needs_connection",
        summary: "shutdown of a Unix socket with no peer (never connected, or the listener) is ENOTCONN and changes nothing on gVisor; Linux records it (a listener shut for reading then refuses connections)",
        evidence: "unix-listener-shutdown-rd.cfz",
    },
    Difference {
        name: "unix.unconnected_inq_enotconn",
        summary: "SIOCINQ on a Unix socket with no peer says ENOTCONN on gVisor; Linux says 0 for a never-connected socket and EINVAL for a listener",
        evidence: "unix-inq-counts-unread-bytes.cfz",
    },
    Difference {
        name: "unix.unconnected_poll_empty",
        summary: "a Unix socket with no peer (never connected, or refused) polls nothing on gVisor, OUT|HUP on Linux",
        evidence: "unix-never-connected-write-read.cfz",
    },
    Difference {
        name: "unix.unconnected_stream_read_enotconn",
        summary: "a read on a Unix stream socket with no peer (never connected, or the listener) says ENOTCONN on gVisor, EINVAL on Linux",
        evidence: "unix-listener-read-write.cfz",
    },
    Difference {
        name: "unix.zero_length_recv_returns_zero",
        summary: "a zero-length recv on a Unix socket returns 0 on gVisor whatever the socket holds; Linux looks at the socket: EAGAIN on an empty queue, a pending ECONNRESET, and on seqpacket it consumes the next record",
        evidence: "ported/gvisor-socket_unix_stream-ZeroLengthRecvEmptyQueue.cfz",
    },
    Difference {
        name: "unix.zero_length_send_reaches_socket",
        summary: "gVisor returns 0 for a zero-length send before the socket sees it: no EPIPE after shutdown or the peer's close, and no empty seqpacket record",
        evidence: "seqpacket-empty-send-is-a-record.cfz",
    },
];

/// Differences on every transport: fields of [`Profile`] itself, in field order.
pub const COMMON_DIFFERENCES: &[Difference] = &[
    Difference {
        name: "oob_ignored",
        summary: "gVisor (on every transport) and lwIP (TCP, its only one) ignore MSG_OOB on send and receive: a `write N oob` is a plain write and a `read N oob` a plain read; Linux makes the last byte TCP urgent data or a Unix out-of-band byte, and says EOPNOTSUPP on seqpacket",
        evidence: "tcp-urgent-byte-stops-a-read.cfz",
    },
    Difference {
        name: "poll_rdhup",
        summary: "gVisor (on any transport) and lwIP (lwip_pollscan knows IN, OUT and ERR only) never report POLLRDHUP: a shut read side shows at most as IN",
        evidence: "tcp-shutdown-rd-without-pending-data.cfz",
    },
    Difference {
        name: "sigpipe_on_epipe",
        summary: "no SIGPIPE when a send fails with EPIPE: gVisor raises none (blocked, handled or default alike), and smoltcp and lwIP are libraries that raise no signals",
        evidence: "tcp-motivating-case.cfz",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_that_differs_is_a_named_difference() {
        // Every profile field somewhere differs from Linux only through an entry here.
        for p in Platform::ALL {
            every_difference_is_named(Profile::of(p));
        }
    }

    fn every_difference_is_named(profile: Profile) {
        let linux = serde_json::to_value(Profile::linux()).unwrap();
        let other = serde_json::to_value(profile).unwrap();
        let mut differing = vec![];
        fn walk(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
            match (a, b) {
                (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                    for (k, v) in x {
                        let name = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(&name, v, &y[k], out);
                    }
                }
                _ if a != b => out.push(prefix.to_string()),
                _ => {}
            }
        }
        walk("", &linux, &other, &mut differing);
        differing.retain(|n| n != "platform" && !n.starts_with("surface"));
        let named: Vec<&str> = profile.differences().iter().map(|d| d.name).collect();
        assert_eq!(
            differing, named,
            "every difference needs an entry in the *_DIFFERENCES lists, in field order"
        );
        for d in differences() {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scenarios")
                .join(d.evidence);
            assert!(
                path.is_file(),
                "{}: evidence {} is not a scenario",
                d.name,
                d.evidence
            );
        }
    }
}
