// Package pcap reads and writes capture files: classic pcap (either byte
// order, µs or ns timestamps, and the 0xa1b2cd34 "modified" variant on read)
// and pcapng (any number of sections and interfaces; Enhanced, Simple and
// obsolete Packet blocks on read). It also owns the LINKTYPE_* numbers that
// travel with every packet. Its API follows gopacket's pcapgo: a Reader that
// detects the format from the magic number, a Writer for pcap and an
// NgWriter for pcapng.
//
// Reading allocates nothing per packet: Reader.ReadPacket copies a packet
// into a buffer the caller owns (dataplane's FileSource passes its burst
// arena), and the record headers are peeked from a bufio.Reader. Writing
// allocates nothing per packet either: headers are built in arrays the
// writers own.
//
// It must not import any other tapvault package: it is a leaf that
// dataplane, packet, query and tracegen all build on. It knows nothing of
// bursts, blocks or queries.
//
// # Classic pcap
//
//	file header (24 B)
//	0      4     6     8        12       16       20
//	+------+-----+-----+--------+--------+--------+
//	|magic |major|minor|thiszone|sigfigs |snaplen |linktype(+FCS bits)
//	+------+-----+-----+--------+--------+--------+
//
//	record (16 B header, 24 B for 0xa1b2cd34)
//	0       4        8        12       16
//	+-------+--------+--------+--------+---------------+
//	|ts sec |ts frac |incl len|orig len| incl len bytes |
//	+-------+--------+--------+--------+---------------+
//
// # pcapng
//
//	0      4      8                       len-4  len
//	+------+------+-----------------------+------+
//	| type | len  | body                  | len  |
//	+------+------+-----------------------+------+
//
//	SHB body: byte-order-magic(4) major(2) minor(2) section-len(8) options
//	IDB body: linktype(2) reserved(2) snaplen(4) options
//	EPB body: iface(4) tsHigh(4) tsLow(4) caplen(4) origlen(4) data pad options
//	SPB body: origlen(4) data pad
//	PB body:  iface(2) drops(2) then as EPB
package pcap
