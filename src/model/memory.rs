//! How much a Unix socket's send side may hold and how it is counted: what decides a
//! partial write, EAGAIN, EMSGSIZE, POLLOUT and SIOCOUTQ.
//!
//! A Unix socket charges what it sends to itself until the peer has read it: Linux
//! counts the memory of each skb (`sk_wmem_alloc`, skb truesize) against `sk_sndbuf`
//! (net/unix/af_unix.c unix_stream_sendmsg, unix_dgram_sendmsg; net/core/sock.c
//! sock_alloc_send_pskb); gVisor counts bytes against the write queue's limit
//! (pkg/sentry/socket/unix/transport/queue.go). The receiver's SO_RCVBUF plays no part
//! on either. The numbers were measured on Linux 6.18 (x86_64, 4 KiB pages) and runsc
//! release 20221219; notes/buffers/FACTS.md in the project's history has the tables.

use serde::Serialize;

/// How a platform counts a Unix socket's unread sent data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum UnixMemory {
    /// Linux: skb truesize against `sk_sndbuf`; a stream write is cut into skbs of at
    /// most `sk_sndbuf / 2 - 64` bytes, each allocated while the charge is still below
    /// `sk_sndbuf` (so the last one overshoots); an skb's charge is released when the
    /// reader has consumed all of it.
    Truesize,
    /// gVisor: bytes against the limit; a stream write is one message of as many bytes
    /// as fit; a read takes a whole message off the queue at its first byte, releasing
    /// all its charge.
    Bytes,
}

/// Linux's net.core.wmem_default and gVisor's defaultBufferSize: SO_SNDBUF of a new
/// socket.
pub const DEFAULT_SNDBUF: usize = 212_992;

/// The largest SO_SNDBUF value taken before doubling: Linux's net.core.wmem_max (a
/// sysctl: 4 MiB on the machines measured) and gVisor's maxBufferSize (4 MiB).
pub const SNDBUF_MAX: usize = 4 << 20;

/// Linux: sk_buff rounded to a cache line, charged with every skb.
const SKB_OVERHEAD: usize = 256;
/// Linux: skb_shared_info rounded to a cache line, at the end of every skb's head.
const SHINFO: usize = 320;
/// Linux: SKB_MAX_HEAD(0), the most bytes unix_stream_sendmsg puts in an skb's head.
const SKB_MAX_HEAD: usize = 3776;
/// Linux: UNIX_SKB_FRAGS_SZ, the most bytes a stream skb carries in pages.
const UNIX_SKB_FRAGS: usize = 32768;
/// Linux: SKB_MAX_ALLOC, the most bytes unix_dgram_sendmsg puts in an skb's head
/// before it moves the rest to pages.
const SKB_MAX_ALLOC: usize = 16064;
/// Linux: MAX_SKB_FRAGS pages, the most a record carries in pages.
const MAX_FRAG_BYTES: usize = 17 * 4096;
const PAGE: usize = 4096;

impl UnixMemory {
    /// The send buffer after `setsockopt(SO_SNDBUF, v)` (`None`: never set).
    /// Linux's sk_setsockopt stores max(2 * min(v, wmem_max), SOCK_MIN_SNDBUF = 4608);
    /// gVisor's clampBufSize max(2 * min(v, 4 MiB), 4 KiB).
    pub fn sndbuf(self, set: Option<u32>) -> usize {
        let Some(v) = set else {
            return DEFAULT_SNDBUF;
        };
        let doubled = 2 * (v as usize).min(SNDBUF_MAX);
        match self {
            UnixMemory::Truesize => doubled.max(4608),
            UnixMemory::Bytes => doubled.max(4096),
        }
    }

    /// The bytes of the next stream skb (Linux) or message (gVisor) for `left` bytes
    /// still to send: unix_stream_sendmsg's `min(size, sk_sndbuf / 2 - 64,
    /// SKB_MAX_HEAD(0) + UNIX_SKB_FRAGS_SZ)` ("keep two messages in the pipe"); gVisor
    /// sends one message per write.
    pub fn stream_chunk(self, sndbuf: usize, left: usize) -> usize {
        match self {
            UnixMemory::Truesize => left
                .min((sndbuf / 2).saturating_sub(64))
                .min(SKB_MAX_HEAD + UNIX_SKB_FRAGS),
            UnixMemory::Bytes => left,
        }
    }

    /// What one stream skb of `len` bytes is charged: Linux puts
    /// `min(len, PAGE_ALIGN(len - SKB_MAX_HEAD(0)))` bytes in pages and the rest in a
    /// kmalloc'd head (unix_stream_sendmsg); gVisor charges the bytes.
    pub fn stream_charge(self, len: usize) -> usize {
        match self {
            UnixMemory::Truesize => {
                let paged = len.min(page_align(len.saturating_sub(SKB_MAX_HEAD)));
                truesize(len - paged, paged)
            }
            UnixMemory::Bytes => len,
        }
    }

    /// What one seqpacket record of `len` bytes is charged: unix_dgram_sendmsg keeps up
    /// to SKB_MAX_ALLOC bytes in the head and moves the rest (page-aligned, at most
    /// MAX_SKB_FRAGS pages) to pages.
    pub fn record_charge(self, len: usize) -> usize {
        match self {
            UnixMemory::Truesize => {
                let paged = if len > SKB_MAX_ALLOC {
                    page_align((len - SKB_MAX_ALLOC).min(MAX_FRAG_BYTES))
                } else {
                    0
                };
                let paged = paged.min(len);
                truesize(len - paged, paged)
            }
            UnixMemory::Bytes => len,
        }
    }

    /// Whether another skb may be allocated (Linux: sock_alloc_send_pskb checks
    /// `sk_wmem_alloc < sk_sndbuf` before allocating) or how many more bytes fit
    /// (gVisor: limit - used).
    pub fn room(self, charged: usize, sndbuf: usize) -> usize {
        sndbuf.saturating_sub(charged)
    }

    /// The longest record a seqpacket send takes: Linux's unix_dgram_sendmsg says
    /// EMSGSIZE past `sk_sndbuf - 32`; gVisor's queue past its limit.
    pub fn max_record(self, sndbuf: usize) -> usize {
        match self {
            UnixMemory::Truesize => sndbuf.saturating_sub(32),
            UnixMemory::Bytes => sndbuf,
        }
    }

    /// POLLOUT: Linux's unix_writable, `sk_wmem_alloc * 4 <= sk_sndbuf` where the
    /// refcount sk_wmem_alloc is one more than the charge; gVisor's queue is writable
    /// while `4 * used < limit`.
    pub fn writable(self, charged: usize, sndbuf: usize) -> bool {
        match self {
            UnixMemory::Truesize => (charged + 1) * 4 <= sndbuf,
            UnixMemory::Bytes => charged * 4 < sndbuf,
        }
    }
}

fn page_align(n: usize) -> usize {
    n.div_ceil(PAGE) * PAGE
}

/// SKB_TRUESIZE of an skb with a `head`-byte linear part and `paged` bytes in pages:
/// the head is kmalloc'd with skb_shared_info after it, rounded up to the kmalloc
/// bucket (powers of two from 512 at these sizes), plus the sk_buff, plus whole pages.
fn truesize(head: usize, paged: usize) -> usize {
    let want = head.div_ceil(64) * 64 + SHINFO;
    let bucket = want.next_power_of_two().max(512);
    SKB_OVERHEAD + bucket + page_align(paged)
}

#[cfg(test)]
mod tests {
    use super::UnixMemory::{Bytes, Truesize};

    /// SIOCOUTQ after one write of each size into an empty Unix stream socket, measured
    /// on Linux 6.18 (notes/buffers: probe_unix.py).
    #[test]
    fn stream_truesize_matches_the_measured_siocoutq() {
        for (len, outq) in [
            (1, 768),
            (192, 768),
            (500, 1280),
            (1000, 2304),
            (1500, 2304),
            (2000, 4352),
            (3776, 4352),
            (3777, 4864),
            (4096, 4864),
            (8000, 8960),
            (16320, 17152),
            (32768, 33536),
            (36544, 37120),
        ] {
            assert_eq!(Truesize.stream_charge(len), outq, "write {len}");
        }
        assert_eq!(Bytes.stream_charge(4096), 4096);
    }

    /// The same for seqpacket records, whose head grows to SKB_MAX_ALLOC.
    #[test]
    fn record_truesize_matches_the_measured_siocoutq() {
        for (len, outq) in [
            (1, 768),
            (500, 1280),
            (1000, 2304),
            (3776, 4352),
            (3777, 8448),
            (4096, 8448),
            (8000, 16640),
            (16320, 20736),
            (32768, 37120),
            (36544, 37120),
            (65536, 69888),
        ] {
            assert_eq!(Truesize.record_charge(len), outq, "record {len}");
        }
    }

    /// A 1,000,000-byte write fills the stream to the measured counts: 219,264 bytes by
    /// default, 8,064 with SO_SNDBUF 4096, 32,640 with 16384, 146,176 with 65536.
    #[test]
    fn a_large_write_stops_where_linux_stops() {
        for (set, accepted) in [
            (None, 219_264),
            (Some(4096), 8064),
            (Some(16384), 32_640),
            (Some(65536), 146_176),
        ] {
            let sndbuf = Truesize.sndbuf(set);
            let (mut charged, mut sent, mut left) = (0, 0, 1_000_000usize);
            while left > 0 && Truesize.room(charged, sndbuf) > 0 {
                let c = Truesize.stream_chunk(sndbuf, left);
                charged += Truesize.stream_charge(c);
                sent += c;
                left -= c;
            }
            assert_eq!(sent, accepted, "sndbuf {set:?}");
        }
    }
}
