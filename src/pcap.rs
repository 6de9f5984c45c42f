//! `--pcap FILE`: what a case's held wire carried, as a pcapng capture for Wireshark.
//!
//! Every packet is written each time something happened to it: when its stack sent it
//! (`emitted`: it waits in flight), when a step handed it to its receiver (`delivered`;
//! the handshake's packets, delivered before the first step, only so), and when a
//! `drop` step threw it away (`dropped`). Each carries a comment saying which, during
//! which step, and how the comparison names it, so the capture reads as the ladder
//! does. The link type is raw IP (LINKTYPE_RAW): the packets are IPv4 or IPv6 as the
//! stack sent them, checksums included.

use crate::exec::{Packet, PacketEvent};
use crate::step::Step;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{PcapNgBlock, PcapNgWriter};
use pcap_file::DataLink;
use std::borrow::Cow;
use std::io::Write;

/// The comment one packet gets: what happened to it, when, and its name.
pub fn comment(p: &Packet, steps: &[Step]) -> String {
    let when = match p.step.and_then(|i| steps.get(i).map(|s| (i, s))) {
        Some((i, s)) => format!("step {} `{s}`", i + 1),
        None => "handshake, before the first step".to_string(),
    };
    let what = match p.event {
        PacketEvent::Emitted => "emitted, held",
        PacketEvent::Delivered => "delivered",
        PacketEvent::Dropped => "dropped",
    };
    format!("{when}: {what}: {}", p.seg)
}

/// Writes `packets` (of a case with `steps`) to `out` as pcapng; returns how many
/// packet blocks were written.
pub fn write<W: Write>(out: W, packets: &[Packet], steps: &[Step]) -> std::io::Result<usize> {
    let err = |e: pcap_file::PcapError| std::io::Error::other(e.to_string());
    let mut w = PcapNgWriter::new(out).map_err(err)?;
    let iface = InterfaceDescriptionBlock {
        linktype: DataLink::RAW,
        snaplen: 0xFFFF,
        // pcap_file writes timestamps in nanoseconds; without if_tsresol readers take
        // them as microseconds (pcapng's default), a second for every millisecond.
        options: vec![InterfaceDescriptionOption::IfTsResol(9)],
    };
    w.write_block(&iface.into_block()).map_err(err)?;
    for p in packets {
        let block = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: p.at,
            original_len: u32::try_from(p.bytes.len()).unwrap_or(u32::MAX),
            data: Cow::Borrowed(&p.bytes),
            options: vec![EnhancedPacketOption::Comment(Cow::Owned(comment(p, steps)))],
        };
        w.write_block(&block.into_block()).map_err(err)?;
    }
    Ok(packets.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::{Dir, SegName, Sock, WireSeg};
    use pcap_file::pcapng::{Block, PcapNgReader};
    use std::time::Duration;

    fn packet(step: Option<usize>, event: PacketEvent, bytes: Vec<u8>) -> Packet {
        Packet {
            step,
            event,
            seg: WireSeg {
                dir: Dir {
                    from: Sock::A,
                    to: Sock::B,
                },
                name: SegName::Fin,
                seq: 5,
                ack: Some(0),
            },
            bytes,
            at: Duration::from_micros(7),
        }
    }

    /// What is written reads back as pcapng: one raw-IP interface, the packets in
    /// order with their bytes, each with its comment.
    #[test]
    fn a_capture_reads_back_with_its_comments() {
        let steps = [Step::call(Sock::A, crate::step::Op::Close)];
        let packets = [
            packet(Some(0), PacketEvent::Emitted, vec![0x45, 1, 2]),
            packet(Some(0), PacketEvent::Dropped, vec![0x45, 1, 2]),
            packet(None, PacketEvent::Delivered, vec![0x60, 9]),
        ];
        let mut buf = vec![];
        assert_eq!(write(&mut buf, &packets, &steps).unwrap(), 3);
        let mut r = PcapNgReader::new(&buf[..]).unwrap();
        let mut seen = vec![];
        while let Some(block) = r.next_block() {
            match block.unwrap() {
                Block::InterfaceDescription(i) => {
                    assert_eq!(i.linktype, DataLink::RAW);
                    // Nanoseconds, as the packets' timestamps are written.
                    assert!(i
                        .options
                        .contains(&InterfaceDescriptionOption::IfTsResol(9)));
                }
                Block::EnhancedPacket(p) => {
                    let c = p.options.iter().find_map(|o| match o {
                        EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                        _ => None,
                    });
                    seen.push((p.data.to_vec(), c.unwrap()));
                }
                _ => {}
            }
        }
        assert_eq!(
            seen,
            vec![
                (
                    vec![0x45, 1, 2],
                    "step 1 `a: close`: emitted, held: a>b FIN seq 5 ack 0".to_string()
                ),
                (
                    vec![0x45, 1, 2],
                    "step 1 `a: close`: dropped: a>b FIN seq 5 ack 0".to_string()
                ),
                (
                    vec![0x60, 9],
                    "handshake, before the first step: delivered: a>b FIN seq 5 ack 0".to_string()
                ),
            ]
        );
    }
}
