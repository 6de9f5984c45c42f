//! The orders in which one step's segments may leave, across connections and ends.
//!
//! A call or a delivery sends on one connection, in the order the rules send. A sleep
//! is different: each retransmission timer that fires in it sends when it fires, and
//! the kernel's timers run in deadline order, so two connections' (or one
//! connection's two ends') segments interleave by time. A timer fires within a window
//! around its deadline, not at it (the calls' own time, the timer wheel's granularity:
//! see [`super::tcp::TIMER_EARLY_MS`] and [`super::tcp::timer_late_ms`]), so where two
//! firings' windows overlap either may come first: both orders are predicted. Where
//! they do not, the earlier window's segments come first; one sender's firings keep
//! their order (one timer, re-armed each time it fires), and so do a firing's segments.

use crate::step::{Sock, WireSeg};

/// The most orders of one step's segments predicted; past it the rest are counted as
/// ways dropped (see [`super::Prediction::ways_dropped`]).
pub const MAX_ORDERS: usize = 64;

/// The window of model time (ms slept since the case began) in which the timer that
/// sent a segment fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Firing {
    /// The earliest it may have fired.
    pub earliest: u64,
    /// The latest it may have fired.
    pub latest: u64,
}

/// A segment the model sent in a step, with the window of the timer that sent it
/// (`None`: a call or a delivery sent it, at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentSeg {
    /// The segment, as the executor reports it.
    pub seg: WireSeg,
    /// When it left, if a timer sent it.
    pub fired: Option<Firing>,
}

/// The segments one connection's firings (or its calls) sent, grouped: consecutive
/// segments of one sender from one firing stay together.
struct Unit<'a> {
    conn: usize,
    sender: Sock,
    fired: Option<Firing>,
    segs: &'a [SentSeg],
}

/// Every order the step's segments may have left in, the likeliest first (the
/// connections' first ways, firings in deadline order), without repeats, at most
/// [`MAX_ORDERS`]; and how many orders the bound dropped. `first` went before all the
/// rest (segments a listener's close sent for its queue); `conns[i]` holds connection
/// `i`'s ways to go, each the segments it sent.
pub fn orders(first: &[WireSeg], conns: &[Vec<Vec<SentSeg>>]) -> (Vec<Vec<WireSeg>>, usize) {
    let mut out: Vec<Vec<WireSeg>> = Vec::new();
    let mut dropped = 0;
    // Every combination of the connections' ways, the first ways first.
    let mut pick = vec![0usize; conns.len()];
    loop {
        let lists: Vec<&[SentSeg]> = conns
            .iter()
            .zip(&pick)
            .map(|(ways, &i)| ways.get(i).map_or(&[][..], Vec::as_slice))
            .collect();
        for order in interleavings(&lists) {
            let mut v = first.to_vec();
            v.extend(order);
            if out.contains(&v) {
                continue;
            }
            if out.len() == MAX_ORDERS {
                dropped += 1;
            } else {
                out.push(v);
            }
        }
        // The next combination (an odometer over the connections' ways).
        let mut k = 0;
        loop {
            if k == conns.len() {
                return (out, dropped);
            }
            pick[k] += 1;
            if pick[k] < conns[k].len().max(1) {
                break;
            }
            pick[k] = 0;
            k += 1;
        }
    }
}

/// The orders one way of each connection may interleave in (see the module docs).
fn interleavings(lists: &[&[SentSeg]]) -> Vec<Vec<WireSeg>> {
    let concat =
        || -> Vec<WireSeg> { lists.iter().flat_map(|l| l.iter().map(|s| s.seg)).collect() };
    let all_timed = lists.iter().all(|l| l.iter().all(|s| s.fired.is_some()));
    if !all_timed {
        // Sent by calls and deliveries: in the order the rules sent them.
        return vec![concat()];
    }
    let mut units: Vec<Unit> = Vec::new();
    for (conn, list) in lists.iter().enumerate() {
        let mut i = 0;
        while i < list.len() {
            let (sender, fired) = (list[i].seg.dir.from, list[i].fired);
            let n = list[i..]
                .iter()
                .take_while(|s| s.seg.dir.from == sender && s.fired == fired)
                .count();
            units.push(Unit {
                conn,
                sender,
                fired,
                segs: &list[i..i + n],
            });
            i += n;
        }
    }
    // `before[v]`: the units that must leave before unit v.
    let before: Vec<Vec<usize>> = (0..units.len())
        .map(|v| {
            (0..units.len())
                .filter(|&u| u != v && must_precede(&units, u, v))
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    let mut placed = vec![false; units.len()];
    let mut path = Vec::new();
    extend(&units, &before, &mut placed, &mut path, &mut out);
    if out.is_empty() {
        // Windows that contradict the senders' own order (not expected): the order
        // the model sent in.
        return vec![concat()];
    }
    out
}

/// Whether unit `u` certainly left before unit `v`.
fn must_precede(units: &[Unit], u: usize, v: usize) -> bool {
    let (a, b) = (&units[u], &units[v]);
    let same_sender = a.conn == b.conn && a.sender == b.sender;
    match (a.fired, b.fired) {
        _ if same_sender => u < v,
        (Some(x), Some(y)) => x.latest < y.earliest,
        _ => false,
    }
}

/// Depth-first over the units that may leave next, in deadline order, collecting
/// complete orders until there are more than [`MAX_ORDERS`] (the caller counts them).
fn extend(
    units: &[Unit],
    before: &[Vec<usize>],
    placed: &mut [bool],
    path: &mut Vec<usize>,
    out: &mut Vec<Vec<WireSeg>>,
) {
    if out.len() > MAX_ORDERS {
        return;
    }
    if path.len() == units.len() {
        out.push(
            path.iter()
                .flat_map(|&u| units[u].segs.iter().map(|s| s.seg))
                .collect(),
        );
        return;
    }
    let mut ready: Vec<usize> = (0..units.len())
        .filter(|&v| !placed[v] && before[v].iter().all(|&u| placed[u]))
        .collect();
    ready.sort_by_key(|&v| (units[v].fired.map_or(0, |f| f.earliest), v));
    for v in ready {
        placed[v] = true;
        path.push(v);
        extend(units, before, placed, path, out);
        path.pop();
        placed[v] = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::{Dir, SegName};

    fn seg(from: Sock, to: Sock, at: Option<(u64, u64)>) -> SentSeg {
        SentSeg {
            seg: WireSeg {
                dir: Dir { from, to },
                name: SegName::Data(1),
                seq: 0,
                ack: Some(0),
            },
            fired: at.map(|(earliest, latest)| Firing { earliest, latest }),
        }
    }

    #[test]
    fn overlapping_firings_of_two_connections_go_either_way() {
        let a = seg(Sock::A, Sock::L, Some((900, 1325)));
        let b = seg(Sock::B, Sock::C, Some((905, 1330)));
        let (o, dropped) = orders(&[], &[vec![vec![a]], vec![vec![b]]]);
        assert_eq!(o, vec![vec![a.seg, b.seg], vec![b.seg, a.seg]]);
        assert_eq!(dropped, 0);
    }

    #[test]
    fn disjoint_firings_keep_their_order_and_deadline_order_comes_first() {
        // Connection 0's end fires late, connection 1's early: 1's segment first.
        let late = seg(Sock::A, Sock::L, Some((2900, 3575)));
        let early = seg(Sock::B, Sock::C, Some((900, 1325)));
        let (o, _) = orders(&[], &[vec![vec![late]], vec![vec![early]]]);
        assert_eq!(o, vec![vec![early.seg, late.seg]]);
    }

    #[test]
    fn one_senders_firings_never_swap() {
        let x = seg(Sock::A, Sock::B, Some((900, 1325)));
        let y = seg(Sock::A, Sock::B, Some((900, 1325)));
        let y = SentSeg {
            seg: WireSeg { seq: 1, ..y.seg },
            ..y
        };
        let (o, _) = orders(&[], &[vec![vec![x, y]]]);
        assert_eq!(o, vec![vec![x.seg, y.seg]]);
    }

    #[test]
    fn segments_calls_sent_keep_the_rules_order() {
        let a = seg(Sock::A, Sock::L, None);
        let b = seg(Sock::B, Sock::C, None);
        let (o, _) = orders(&[], &[vec![vec![a]], vec![vec![b]]]);
        assert_eq!(o, vec![vec![a.seg, b.seg]]);
    }

    #[test]
    fn every_way_of_every_connection_is_combined() {
        let a = seg(Sock::A, Sock::L, None);
        let b1 = seg(Sock::B, Sock::C, None);
        let (o, _) = orders(&[], &[vec![vec![a], vec![]], vec![vec![b1]]]);
        assert_eq!(o, vec![vec![a.seg, b1.seg], vec![b1.seg]]);
    }
}
