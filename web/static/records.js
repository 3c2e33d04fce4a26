// What the views say about one record: its one-line summary per protocol.
// Every value is hostile text from the wire; callers put it in text nodes.

export function summary(r) {
  const s = (v) => (v === undefined || v === null ? '' : String(v));
  switch (r.proto) {
    case 'http': return `${s(r.method)} ${s(r.host)}${s(r.path)}` + (r.status !== undefined ? ` → ${r.status}` : '');
    case 'dns': return `${s(r.qtype)} ${s(r.qname)}` + (r.rcode_name !== undefined ? ` → ${r.rcode_name}` : '');
    case 'tls': return `${s(r.sni)} ${s(r.version)}`;
    case 'redis': return `${s(r.command)} ${s(r.key)}` + (r.reply !== undefined ? ` → ${r.reply}` : '');
    case 'postgres': return cut(s(r.statement)) + (r.tag ? ` → ${r.tag}` : '') + (r.error_code ? ` error ${r.error_code}` : '');
    case 'mysql': return cut(s(r.statement)) + (r.result ? ` → ${r.result}` : '');
    case 'fix': return `${s(r.msgtype)} ${s(r.clordid)}` + (r.resp_msgtype ? ` → ${r.resp_msgtype}` : '');
    case 'tcp': return `${s(r.close)} ${s(r.app)}`.trim();
    default: return '';
  }
}

function cut(t) { return t.length > 80 ? t.slice(0, 80) + '…' : t; }

// The built-in names of a record's JSON (docs/messages.md); every other
// key is a protocol field.
export const builtin = new Set(['id', 'proto', 'transport', 'vlan', 'client', 'server',
  'req_first_ns', 'req_last_ns', 'resp_first_ns', 'resp_last_ns', 'server_ack_ns', 'client_ack_ns',
  'latency_ns', 'network_ns', 'server_ns', 'transfer_ns', 'client_net_ns', 'rtt_ns',
  'class', 'net_from', 'confidence', 'near', 'why', 'req_bytes', 'resp_bytes', 'req_packets', 'resp_packets',
  'flags', 'packets', 'tier_before_ns', 'tier_backend_ns', 'tier_after_ns', 'tier_self_ns', 'backends', 'frontend']);

// connFilter: the tcpdump filter of the record's connection.
export function connFilter(r) {
  const hp = (s) => {
    const m = /^\[(.*)\]:(\d+)$/.exec(s) || /^(.*):(\d+)$/.exec(s);
    return m ? [m[1], m[2]] : [s, ''];
  };
  const [ch, cp] = hp(r.client); const [sh, sp] = hp(r.server);
  const t = r.transport === 'udp' ? 'udp' : 'tcp';
  return `${t} and host ${ch} and host ${sh} and port ${cp} and port ${sp}`;
}
