// A pcap reader and a small layer decoder (Ethernet, 802.1Q, ARP, IPv4,
// IPv6, TCP, UDP, ICMP) for the packet list, the ladder and the packet
// detail. The bytes are the API's capture file, exactly what a download
// gives, so what is shown is what Wireshark would open. Bad bytes never
// throw out of decode(): a layer that does not fit ends the decoding and
// says so.

const LINK_ETHERNET = 1;
const LINK_RAW = 101;

// readPcap(ArrayBuffer) -> {linkType, nano, packets: [{ts (BigInt ns),
// caplen, wirelen, data (Uint8Array)}]}.
export function readPcap(buf) {
  const dv = new DataView(buf);
  if (buf.byteLength < 24) throw new Error('not a pcap file: ' + buf.byteLength + ' bytes');
  const m = dv.getUint32(0, true);
  let le; let nano;
  if (m === 0xa1b2c3d4) { le = true; nano = false; }
  else if (m === 0xa1b23c4d) { le = true; nano = true; }
  else if (m === 0xd4c3b2a1) { le = false; nano = false; }
  else if (m === 0x4d3cb2a1) { le = false; nano = true; }
  else throw new Error('not a pcap file (magic 0x' + m.toString(16) + '); pcapng is not shown here');
  const linkType = dv.getUint32(20, le) & 0xffff;
  const packets = [];
  let off = 24;
  while (off + 16 <= buf.byteLength) {
    const sec = BigInt(dv.getUint32(off, le));
    const sub = BigInt(dv.getUint32(off + 4, le));
    const caplen = dv.getUint32(off + 8, le);
    const wirelen = dv.getUint32(off + 12, le);
    off += 16;
    if (off + caplen > buf.byteLength) throw new Error('pcap cut short at byte ' + off);
    packets.push({
      ts: sec * 1000000000n + (nano ? sub : sub * 1000n),
      caplen, wirelen, linkType,
      data: new Uint8Array(buf, off, caplen),
    });
    off += caplen;
  }
  return { linkType, nano, packets };
}

function hex(n, w) { return '0x' + n.toString(16).padStart(w, '0'); }
function mac(b, o) {
  const p = [];
  for (let i = 0; i < 6; i++) p.push(b[o + i].toString(16).padStart(2, '0'));
  return p.join(':');
}
function ip4(b, o) { return b[o] + '.' + b[o + 1] + '.' + b[o + 2] + '.' + b[o + 3]; }
function ip6(b, o) {
  const g = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[o + i] << 8) | b[o + i + 1]).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1; let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return g.join(':');
  return g.slice(0, best).join(':') + '::' + g.slice(best + bestLen).join(':');
}
function u16(b, o) { return (b[o] << 8) | b[o + 1]; }
function u32(b, o) { return ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3]; }

const TCP_FLAGS = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'];

// decode(packet) -> {layers: [{name, fields: [[name, value]]}], src, dst,
// proto, info, tcp?, udp?, endpoints: {src, dst} as "ip:port" (IPv6 in
// brackets) when there are ports}.
export function decode(p) {
  const b = p.data;
  const d = { layers: [], src: '', dst: '', proto: '', info: '', sport: 0, dport: 0, ipSrc: '', ipDst: '' };
  try {
    let o = 0;
    let et = -1;
    if (p.linkType === LINK_ETHERNET) {
      if (b.length < 14) { d.proto = 'Ethernet'; d.info = 'truncated Ethernet header'; return d; }
      d.src = mac(b, 6); d.dst = mac(b, 0);
      et = u16(b, 12);
      d.layers.push({ name: 'Ethernet II', fields: [['Destination', mac(b, 0)], ['Source', mac(b, 6)], ['Type', hex(et, 4)]] });
      o = 14;
      while ((et === 0x8100 || et === 0x88a8) && o + 4 <= b.length) {
        const tci = u16(b, o);
        d.layers.push({ name: '802.1Q VLAN', fields: [['Priority', tci >> 13], ['VLAN ID', tci & 0xfff], ['Type', hex(u16(b, o + 2), 4)]] });
        et = u16(b, o + 2);
        o += 4;
      }
    } else if (p.linkType === LINK_RAW) {
      et = b.length > 0 && (b[0] >> 4) === 6 ? 0x86dd : 0x0800;
    } else {
      d.proto = 'link ' + p.linkType;
      d.info = 'link type ' + p.linkType + ' is not decoded here';
      return d;
    }
    let l4 = -1; let l4off = 0; let l4end = b.length;
    if (et === 0x0800) {
      if (o + 20 > b.length) { d.proto = 'IPv4'; d.info = 'truncated IPv4 header'; return d; }
      const ihl = (b[o] & 15) * 4;
      const tot = u16(b, o + 2);
      const fo = u16(b, o + 6);
      d.ipSrc = ip4(b, o + 12); d.ipDst = ip4(b, o + 16);
      d.src = d.ipSrc; d.dst = d.ipDst;
      l4 = b[o + 9];
      d.layers.push({ name: 'Internet Protocol Version 4', fields: [
        ['Header length', ihl], ['Total length', tot], ['Identification', hex(u16(b, o + 4), 4)],
        ['Flags', hex(fo >> 13, 1)], ['Fragment offset', (fo & 0x1fff) * 8], ['TTL', b[o + 8]],
        ['Protocol', l4], ['Source', d.ipSrc], ['Destination', d.ipDst]] });
      l4off = o + ihl;
      l4end = Math.min(b.length, o + tot);
      if ((fo & 0x1fff) !== 0) { d.proto = 'IPv4'; d.info = 'Fragmented IP protocol (proto ' + l4 + ', off ' + (fo & 0x1fff) * 8 + ')'; return d; }
    } else if (et === 0x86dd) {
      if (o + 40 > b.length) { d.proto = 'IPv6'; d.info = 'truncated IPv6 header'; return d; }
      d.ipSrc = ip6(b, o + 8); d.ipDst = ip6(b, o + 24);
      d.src = d.ipSrc; d.dst = d.ipDst;
      l4 = b[o + 6];
      d.layers.push({ name: 'Internet Protocol Version 6', fields: [
        ['Payload length', u16(b, o + 4)], ['Next header', l4], ['Hop limit', b[o + 7]],
        ['Source', d.ipSrc], ['Destination', d.ipDst]] });
      l4off = o + 40;
      l4end = Math.min(b.length, o + 40 + u16(b, o + 4));
    } else if (et === 0x0806) {
      d.proto = 'ARP';
      if (o + 28 <= b.length) {
        const op = u16(b, o + 6);
        const spa = ip4(b, o + 14); const tpa = ip4(b, o + 24);
        d.info = op === 1 ? `Who has ${tpa}? Tell ${spa}` : `${spa} is at ${mac(b, o + 8)}`;
        d.layers.push({ name: 'Address Resolution Protocol', fields: [['Opcode', op], ['Sender IP', spa], ['Target IP', tpa]] });
      }
      return d;
    } else {
      d.proto = 'Ethernet'; d.info = 'EtherType ' + hex(et, 4);
      return d;
    }
    const br = (a) => (a.includes(':') ? '[' + a + ']' : a);
    if (l4 === 6) {
      d.proto = 'TCP';
      if (l4off + 20 > b.length) { d.info = 'truncated TCP header'; return d; }
      const sp = u16(b, l4off); const dp = u16(b, l4off + 2);
      const seq = u32(b, l4off + 4); const ack = u32(b, l4off + 8);
      const hl = (b[l4off + 12] >> 4) * 4;
      const fl = b[l4off + 13];
      const win = u16(b, l4off + 14);
      const len = Math.max(0, l4end - l4off - hl);
      const flags = TCP_FLAGS.filter((_, i) => fl & (1 << i));
      d.sport = sp; d.dport = dp;
      d.tcp = { seq, ack, flags, len, win, payloadOff: l4off + hl, payloadEnd: l4end };
      d.layers.push({ name: 'Transmission Control Protocol', fields: [
        ['Source port', sp], ['Destination port', dp], ['Sequence number', seq], ['Acknowledgment number', ack],
        ['Header length', hl], ['Flags', flags.join(', ') || '(none)'], ['Window', win], ['Payload length', len]] });
      d.info = `${sp} → ${dp} [${flags.join(', ')}] Seq=${seq}` + (fl & 16 ? ` Ack=${ack}` : '') + ` Win=${win} Len=${len}`;
      d.endpoints = { src: br(d.ipSrc) + ':' + sp, dst: br(d.ipDst) + ':' + dp };
    } else if (l4 === 17) {
      d.proto = 'UDP';
      if (l4off + 8 > b.length) { d.info = 'truncated UDP header'; return d; }
      const sp = u16(b, l4off); const dp = u16(b, l4off + 2);
      const len = u16(b, l4off + 4);
      d.sport = sp; d.dport = dp;
      d.udp = { len: Math.max(0, len - 8), payloadOff: l4off + 8, payloadEnd: Math.min(l4end, l4off + len) };
      d.layers.push({ name: 'User Datagram Protocol', fields: [['Source port', sp], ['Destination port', dp], ['Length', len]] });
      if (sp === 53 || dp === 53) d.proto = 'DNS';
      d.info = `${sp} → ${dp} Len=${Math.max(0, len - 8)}`;
      d.endpoints = { src: br(d.ipSrc) + ':' + sp, dst: br(d.ipDst) + ':' + dp };
    } else if (l4 === 1 || l4 === 58) {
      d.proto = l4 === 1 ? 'ICMP' : 'ICMPv6';
      if (l4off + 4 <= b.length) {
        d.info = `type ${b[l4off]} code ${b[l4off + 1]}`;
        d.layers.push({ name: d.proto, fields: [['Type', b[l4off]], ['Code', b[l4off + 1]]] });
      }
    } else {
      d.proto = 'IP proto ' + l4;
    }
    const pl = d.tcp || d.udp;
    if (pl && pl.payloadEnd > pl.payloadOff) {
      d.layers.push({ name: 'Payload', fields: [['Bytes', pl.payloadEnd - pl.payloadOff], ['Text', printable(b.subarray(pl.payloadOff, Math.min(pl.payloadEnd, pl.payloadOff + 256)))]] });
      const first = firstLine(b.subarray(pl.payloadOff, Math.min(pl.payloadEnd, pl.payloadOff + 128)));
      if (first) d.info += '  ' + first;
    }
  } catch (e) {
    d.info = (d.info ? d.info + ' ' : '') + '[decode error: ' + e.message + ']';
  }
  return d;
}

// printable: bytes as text, anything not printable ASCII as a dot (the
// right column of a hex dump). The result is shown with textContent.
export function printable(b) {
  let s = '';
  for (const c of b) s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '.';
  return s;
}

// firstLine: a text protocol's first line (HTTP, Redis...) when the payload
// starts with printable text.
function firstLine(b) {
  let s = '';
  for (const c of b) {
    if (c === 13 || c === 10) break;
    if (c < 0x20 || c >= 0x7f) return s.length >= 4 ? s : '';
    s += String.fromCharCode(c);
  }
  return s.length >= 4 ? s : '';
}

// hexDump: offset, 16 hex bytes, their printable text; one string per line.
export function hexDump(b) {
  const lines = [];
  for (let o = 0; o < b.length; o += 16) {
    const row = b.subarray(o, Math.min(o + 16, b.length));
    let h = '';
    for (let i = 0; i < 16; i++) h += (i < row.length ? row[i].toString(16).padStart(2, '0') : '  ') + (i === 7 ? '  ' : ' ');
    lines.push(o.toString(16).padStart(4, '0') + '  ' + h + ' ' + printable(row));
  }
  return lines;
}
