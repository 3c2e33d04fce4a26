package analytics

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
)

// The sample packets of RFC 9001 appendix A (QUIC v1) and RFC 9369
// appendix A (QUIC v2): a client Initial carrying a ClientHello for
// example.com (ALPN "alpn") and the server's Initial with its ServerHello,
// for the client DCID 8394c8f03e515708.
const (
	rfcDCID = "8394c8f03e515708"

	rfc9001ClientInitial = "" +
		"c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11" +
		"d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399" +
		"1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c" +
		"8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212" +
		"30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5" +
		"457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208" +
		"4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec" +
		"4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3" +
		"485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db" +
		"059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c" +
		"7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8" +
		"9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556" +
		"be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74" +
		"68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a" +
		"c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00" +
		"f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632" +
		"291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964" +
		"25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd" +
		"14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff" +
		"ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198" +
		"e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd" +
		"c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73" +
		"203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f" +
		"cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e" +
		"fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade" +
		"a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047" +
		"90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2" +
		"162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4" +
		"40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0" +
		"6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e" +
		"8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0" +
		"be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400" +
		"54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab" +
		"760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9" +
		"f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4" +
		"056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064" +
		"7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241" +
		"e221af44860018ab0856972e194cd934"

	rfc9001ServerInitial = "" +
		"cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a" +
		"5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3" +
		"dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84" +
		"022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4" +
		"2158407dd074ee"

	// The CRYPTO frame at the start of both client Initials' payload
	// (then PADDING to 1162 bytes).
	rfcClientCrypto = "" +
		"060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868" +
		"04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578" +
		"616d706c652e636f6dff01000100000a00080006001d00170018001000070005" +
		"04616c706e000500050100000000003300260024001d00209370b2c9caa47fba" +
		"baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400" +
		"0d0010000e0403050306030203080408050806002d00020101001c0002400100" +
		"3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000" +
		"75300901100f088394c8f03e51570806048000ffff"

	rfc9369ClientInitial = "" +
		"d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485" +
		"dd04de806071bf03dceebfa162e75d6c96058bdbfb127cdfcbf903388e99ad04" +
		"9f9a3dd4425ae4d0992cfff18ecf0fdb5a842d09747052f17ac2053d21f57c5d" +
		"250f2c4f0e0202b70785b7946e992e58a59ac52dea6774d4f03b55545243cf1a" +
		"12834e3f249a78d395e0d18f4d766004f1a2674802a747eaa901c3f10cda5500" +
		"cb9122faa9f1df66c392079a1b40f0de1c6054196a11cbea40afb6ef5253cd68" +
		"18f6625efce3b6def6ba7e4b37a40f7732e093daa7d52190935b8da58976ff33" +
		"12ae50b187c1433c0f028edcc4c2838b6a9bfc226ca4b4530e7a4ccee1bfa2a3" +
		"d396ae5a3fb512384b2fdd851f784a65e03f2c4fbe11a53c7777c023462239dd" +
		"6f7521a3f6c7d5dd3ec9b3f233773d4b46d23cc375eb198c63301c21801f6520" +
		"bcfb7966fc49b393f0061d974a2706df8c4a9449f11d7f3d2dcbb90c6b877045" +
		"636e7c0c0fe4eb0f697545460c806910d2c355f1d253bc9d2452aaa549e27a1f" +
		"ac7cf4ed77f322e8fa894b6a83810a34b361901751a6f5eb65a0326e07de7c12" +
		"16ccce2d0193f958bb3850a833f7ae432b65bc5a53975c155aa4bcb4f7b2c4e5" +
		"4df16efaf6ddea94e2c50b4cd1dfe06017e0e9d02900cffe1935e0491d77ffb4" +
		"fdf85290fdd893d577b1131a610ef6a5c32b2ee0293617a37cbb08b847741c3b" +
		"8017c25ca9052ca1079d8b78aebd47876d330a30f6a8c6d61dd1ab5589329de7" +
		"14d19d61370f8149748c72f132f0fc99f34d766c6938597040d8f9e2bb522ff9" +
		"9c63a344d6a2ae8aa8e51b7b90a4a806105fcbca31506c446151adfeceb51b91" +
		"abfe43960977c87471cf9ad4074d30e10d6a7f03c63bd5d4317f68ff325ba3bd" +
		"80bf4dc8b52a0ba031758022eb025cdd770b44d6d6cf0670f4e990b22347a7db" +
		"848265e3e5eb72dfe8299ad7481a408322cac55786e52f633b2fb6b614eaed18" +
		"d703dd84045a274ae8bfa73379661388d6991fe39b0d93debb41700b41f90a15" +
		"c4d526250235ddcd6776fc77bc97e7a417ebcb31600d01e57f32162a8560cacc" +
		"7e27a096d37a1a86952ec71bd89a3e9a30a2a26162984d7740f81193e8238e61" +
		"f6b5b984d4d3dfa033c1bb7e4f0037febf406d91c0dccf32acf423cfa1e70710" +
		"10d3f270121b493ce85054ef58bada42310138fe081adb04e2bd901f2f13458b" +
		"3d6758158197107c14ebb193230cd1157380aa79cae1374a7c1e5bbcb80ee23e" +
		"06ebfde206bfb0fcbc0edc4ebec309661bdd908d532eb0c6adc38b7ca7331dce" +
		"8dfce39ab71e7c32d318d136b6100671a1ae6a6600e3899f31f0eed19e3417d1" +
		"34b90c9058f8632c798d4490da4987307cba922d61c39805d072b589bd52fdf1" +
		"e86215c2d54e6670e07383a27bbffb5addf47d66aa85a0c6f9f32e59d85a44dd" +
		"5d3b22dc2be80919b490437ae4f36a0ae55edf1d0b5cb4e9a3ecabee93dfc6e3" +
		"8d209d0fa6536d27a5d6fbb17641cde27525d61093f1b28072d111b2b4ae5f89" +
		"d5974ee12e5cf7d5da4d6a31123041f33e61407e76cffcdcfd7e19ba58cf4b53" +
		"6f4c4938ae79324dc402894b44faf8afbab35282ab659d13c93f70412e85cb19" +
		"9a37ddec600545473cfb5a05e08d0b209973b2172b4d21fb69745a262ccde96b" +
		"a18b2faa745b6fe189cf772a9f84cbfc"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestQUICInitialSecrets checks the key schedule against RFC 9001 A.1.
func TestQUICInitialSecrets(t *testing.T) {
	initial, err := hkdf.Extract(sha256.New, unhex(t, rfcDCID), quicSaltV1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(initial), "7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44"; got != want {
		t.Fatalf("initial_secret %s, want %s", got, want)
	}
	for _, c := range []struct {
		label, secret, key, iv, hp string
	}{
		{"client in", "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea", "1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2"},
		{"server in", "3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b", "cf3a5331653c364c88f0f379b6067e37", "0ac1493ca1905853b0bba03e", "c206b8d9b9f0f37644430b490eeaa314"},
	} {
		secret, err := quicExpandLabel(initial, c.label, 32)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(secret); got != c.secret {
			t.Fatalf("%s secret %s, want %s", c.label, got, c.secret)
		}
		for _, x := range []struct {
			label string
			n     int
			want  string
		}{{"quic key", 16, c.key}, {"quic iv", 12, c.iv}, {"quic hp", 16, c.hp}} {
			v, err := quicExpandLabel(secret, x.label, x.n)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(v); got != x.want {
				t.Errorf("%s %s %s, want %s", c.label, x.label, got, x.want)
			}
		}
	}
}

// TestQUICOpenRFCPackets opens the RFC 9001 and RFC 9369 sample Initials:
// the plaintext is the published CRYPTO frame and PADDING, the server's
// the published ACK and CRYPTO frames.
func TestQUICOpenRFCPackets(t *testing.T) {
	crypto := unhex(t, rfcClientCrypto)
	for _, c := range []struct {
		name, pkt string
		side      Side
		want      []byte
	}{
		{"v1 client", rfc9001ClientInitial, Client, append(crypto, make([]byte, 1162-len(crypto))...)},
		{"v2 client", rfc9369ClientInitial, Client, append(crypto, make([]byte, 1162-len(crypto))...)},
		{"v1 server", rfc9001ServerInitial, Server, unhex(t, ""+
			"02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739"+
			"88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94"+
			"0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00"+
			"020304")},
	} {
		pkt := unhex(t, c.pkt)
		h, ok := quicParseHeader(pkt)
		if !ok || h.kind != quicInitial || h.end != len(pkt) {
			t.Fatalf("%s: header %+v ok=%v", c.name, h, ok)
		}
		p := newQUICParser(&Config{})
		dcid := quicCID{}
		dcid.set(unhex(t, rfcDCID))
		pt, ok := p.open(c.side, pkt, &h, &dcid)
		if !ok {
			t.Fatalf("%s: not opened", c.name)
		}
		if !bytes.Equal(pt, c.want) {
			t.Fatalf("%s: plaintext\n%x\nwant\n%x", c.name, pt, c.want)
		}
		// One bit flipped anywhere in the ciphertext: not opened.
		bad := bytes.Clone(pkt)
		bad[len(bad)-20] ^= 1
		if _, ok := p.open(c.side, bad, &h, &dcid); ok {
			t.Fatalf("%s: a damaged packet was opened", c.name)
		}
	}
}

// quicFields gives the fields of an exchange as key=value, both messages.
func quicFields(x [2]*Message) string {
	var b strings.Builder
	for _, m := range x {
		if m == nil {
			b.WriteString("[-]")
			continue
		}
		b.WriteString("[")
		for i, f := range m.Fields {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(f.Key + "=" + f.Value())
		}
		b.WriteString("]")
	}
	return b.String()
}

// quic1RTT is a short-header packet (its contents are not read).
var quic1RTT = append([]byte{0x40}, make([]byte, 40)...)

// TestQUICRFCConnection feeds the RFC sample Initials as a connection: the
// record has the SNI, ALPN and cipher, the connection IDs, and the times
// to the server's Initial (packet 2) and the client's 1-RTT (packet 3).
func TestQUICRFCConnection(t *testing.T) {
	st := newTestStream(t)
	p := newQUICParser(&st.cfg)
	st.Feed(p, Client, unhex(t, rfc9001ClientInitial))
	st.Feed(p, Server, unhex(t, rfc9001ServerInitial))
	if len(st.Exchanges) != 0 {
		t.Fatalf("reported before the client finished: %s", xchgSummary(st))
	}
	st.Feed(p, Client, quic1RTT)
	st.Feed(p, Server, quic1RTT)
	p.Close(st)
	xchgCheck(t, st)
	if len(st.Exchanges) != 1 {
		t.Fatalf("got %s, want one exchange", xchgSummary(st))
	}
	got := quicFields(st.Exchanges[0])
	want := "[version=QUICv1 sni=example.com alpn=alpn handshake_ns=2000 hello_ns=1000 dcid=8394c8f03e515708 server_cid=f067a5502a4262b5]" +
		"[version=QUICv1 cipher=0x1301]"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	req, resp := st.Exchanges[0][0], st.Exchanges[0][1]
	if req.Bytes != 1200 || resp.Bytes != int64(len(rfc9001ServerInitial)/2) || req.LastTS != 1000 || resp.LastTS != 2000 {
		t.Fatalf("req %d bytes last %d, resp %d bytes last %d", req.Bytes, req.LastTS, resp.Bytes, resp.LastTS)
	}
}

// TestQUICv2Connection: the RFC 9369 sample Initial, QUIC v2.
func TestQUICv2Connection(t *testing.T) {
	st := newTestStream(t)
	p := newQUICParser(&st.cfg)
	st.Feed(p, Client, unhex(t, rfc9369ClientInitial))
	p.Close(st)
	xchgCheck(t, st)
	if len(st.Exchanges) != 1 {
		t.Fatalf("got %s", xchgSummary(st))
	}
	got := quicFields(st.Exchanges[0])
	want := "[version=QUICv2 sni=example.com alpn=alpn dcid=8394c8f03e515708][-]"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// quicSeal builds a protected long-header packet of kind (quicInitial,
// quicHandshake) in version v with a 4-byte packet number, protected with
// the Initial keys from keyDCID: the inverse of quicParser.open, for the
// tests (its keys are checked against RFC 9001 A.1 above).
func quicSeal(t testing.TB, v uint32, kind int, s Side, keyDCID, dcid, scid []byte, pn uint32, payload []byte) []byte {
	t.Helper()
	ver := quicLookup(v)
	k, err := quicDeriveKeys(ver, keyDCID)
	if err != nil {
		t.Fatal(err)
	}
	typ := byte(kind)
	if ver.v2 {
		typ = byte(kind+1) & 3
	}
	h := []byte{0xc0 | typ<<4 | 3}
	h = binary.BigEndian.AppendUint32(h, v)
	h = append(h, byte(len(dcid)))
	h = append(h, dcid...)
	h = append(h, byte(len(scid)))
	h = append(h, scid...)
	if kind == quicInitial {
		h = append(h, 0) // no token
	}
	l := 4 + len(payload) + 16
	h = append(h, 0x40|byte(l>>8), byte(l))
	pnOff := len(h)
	h = binary.BigEndian.AppendUint32(h, pn)
	d := &k.dir[s]
	var nonce [12]byte
	copy(nonce[:], d.iv[:])
	for i := 0; i < 8; i++ {
		nonce[11-i] ^= byte(uint64(pn) >> (8 * i))
	}
	pkt := d.aead.Seal(bytes.Clone(h), nonce[:], payload, h)
	var mask [16]byte
	d.hp.Encrypt(mask[:], pkt[pnOff+4:pnOff+20])
	pkt[0] ^= mask[0] & 0x0f
	for i := 0; i < 4; i++ {
		pkt[pnOff+i] ^= mask[1+i]
	}
	return pkt
}

// quicCryptoFrame is a CRYPTO frame.
func quicCryptoFrame(off int, data []byte) []byte {
	b := []byte{0x06, 0x80 | byte(off>>24), byte(off >> 16), byte(off >> 8), byte(off)}
	b = append(b, 0x40|byte(len(data)>>8), byte(len(data)))
	return append(b, data...)
}

var (
	quicDCID = []byte{1, 2, 3, 4, 5, 6, 7, 8}
	quicSCID = []byte{0xc1, 0xc2, 0xc3, 0xc4}
	quicSrv  = []byte{0x5e, 0x5e, 0x5e, 0x5e, 0x5e}
)

// quicScattered is a ClientHello in five CRYPTO pieces spread over two
// Initial packets, in no order, with PING, ACK and PADDING between, as
// Chrome sends them; the second packet comes first.
func quicScattered(t testing.TB, v uint32, dcid []byte, sni string) (first, second []byte) {
	ch := tlsClientHello(0x0303, sni, []string{"h3", "h3-29"}, []int{0x0304})
	cut := []int{0, 37, 90, 200, 260, len(ch)}
	piece := func(i int) []byte { return quicCryptoFrame(cut[i], ch[cut[i]:cut[i+1]]) }
	var p1, p2 []byte
	p1 = append(p1, 0x01)
	p1 = append(p1, piece(3)...)
	p1 = append(p1, 0, 0, 0)
	p1 = append(p1, piece(0)...)
	p1 = append(p1, 0x02, 0x00, 0x00, 0x00, 0x00) // ACK 0
	p1 = append(p1, make([]byte, 50)...)
	p2 = append(p2, piece(4)...)
	p2 = append(p2, 0x01)
	p2 = append(p2, piece(2)...)
	p2 = append(p2, piece(1)...)
	p2 = append(p2, quicCryptoFrame(37, ch[37:60])...) // a repeat
	p2 = append(p2, make([]byte, 30)...)
	return quicSeal(t, v, quicInitial, Client, dcid, dcid, quicSCID, 0, p1),
		quicSeal(t, v, quicInitial, Client, dcid, dcid, quicSCID, 1, p2)
}

// TestQUICScatteredHello: the CRYPTO stream is put back together by
// offset; the request spans both datagrams and ends with the one that
// completes the hello. The server's Initial and Handshake share a
// datagram (coalesced); its ServerHello gives the cipher.
func TestQUICScatteredHello(t *testing.T) {
	for _, v := range []uint32{1, 0x6b3343cf, 0xff00001d} {
		a, b := quicScattered(t, v, quicDCID, "scattered.example")
		sh := tlsServerHello(0x0303, 0x1302, 0x0304, "", false)
		srv := quicSeal(t, v, quicInitial, Server, quicDCID, quicSCID, quicSrv, 0,
			append(append([]byte{0x02, 0, 0, 0, 0}, quicCryptoFrame(0, sh)...), 0, 0))
		srv = append(srv, quicSeal(t, v, quicHandshake, Server, []byte("other keys"), quicSCID, quicSrv, 0, make([]byte, 40))...)
		st := newTestStream(t)
		p := newQUICParser(&st.cfg)
		st.Feed(p, Client, b)
		st.Feed(p, Client, a)
		st.Feed(p, Server, srv)
		st.Feed(p, Client, quicSeal(t, v, quicInitial, Client, quicDCID, quicSrv, quicSCID, 2, []byte{0x02, 0, 0, 0, 0, 0, 0, 0}))
		st.Feed(p, Client, quic1RTT)
		p.Close(st)
		xchgCheck(t, st)
		if len(st.Exchanges) != 1 {
			t.Fatalf("%#x: got %s", v, xchgSummary(st))
		}
		x := st.Exchanges[0]
		name := quicVersionName(v)
		want := "[version=" + name + " sni=scattered.example alpn=h3,h3-29 handshake_ns=4000 hello_ns=2000 dcid=0102030405060708 scid=c1c2c3c4 server_cid=5e5e5e5e5e]" +
			"[version=" + name + " cipher=0x1302]"
		if got := quicFields(x); got != want {
			t.Fatalf("%#x:\ngot  %s\nwant %s", v, got, want)
		}
		if n := len(x[0].Pkts); n != 2 || x[0].LastTS != 2000 || x[0].Bytes != int64(len(a)+len(b)) {
			t.Fatalf("%#x: request of %d packets, last at %d, %d bytes", v, n, x[0].LastTS, x[0].Bytes)
		}
	}
}

// TestQUICRetry: after a Retry the client's Initial is protected with keys
// from the Retry's connection ID; one record, retry=1, dcid the first.
func TestQUICRetry(t *testing.T) {
	ch := tlsClientHello(0x0303, "retry.example", []string{"h3"}, []int{0x0304})
	first := quicSeal(t, 1, quicInitial, Client, quicDCID, quicDCID, quicSCID, 0, append(quicCryptoFrame(0, ch), make([]byte, 20)...))
	retryCID := []byte{9, 9, 9, 9, 9, 9, 9, 9}
	retry := []byte{0xf0, 0, 0, 0, 1, byte(len(quicSCID))}
	retry = append(retry, quicSCID...)
	retry = append(retry, byte(len(retryCID)))
	retry = append(retry, retryCID...)
	retry = append(retry, "token"...)
	retry = append(retry, make([]byte, 16)...) // integrity tag (not checked)
	second := quicSeal(t, 1, quicInitial, Client, retryCID, retryCID, quicSCID, 1, append(quicCryptoFrame(0, ch), make([]byte, 20)...))
	sh := tlsServerHello(0x0303, 0x1301, 0x0304, "", false)
	srv := quicSeal(t, 1, quicInitial, Server, retryCID, quicSCID, quicSrv, 0, quicCryptoFrame(0, sh))
	st := newTestStream(t)
	p := newQUICParser(&st.cfg)
	for _, f := range []struct {
		s Side
		b []byte
	}{{Client, first}, {Server, retry}, {Client, second}, {Server, srv}, {Client, quic1RTT}} {
		st.Feed(p, f.s, f.b)
	}
	p.Close(st)
	xchgCheck(t, st)
	if len(st.Exchanges) != 1 {
		t.Fatalf("got %s", xchgSummary(st))
	}
	want := "[version=QUICv1 sni=retry.example alpn=h3 handshake_ns=4000 hello_ns=3000 dcid=0102030405060708 scid=c1c2c3c4 server_cid=5e5e5e5e5e retry=1][version=QUICv1 cipher=0x1301]"
	if got := quicFields(st.Exchanges[0]); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestQUICNewConnection: a client Initial that opens only with keys from
// its own DCID is a new connection on the same ports: the first is
// reported (unanswered), then the second.
func TestQUICNewConnection(t *testing.T) {
	a, _ := quicScattered(t, 1, quicDCID, "one.example")
	dcid2 := []byte{7, 7, 7, 7, 7, 7, 7, 7, 7}
	ch := tlsClientHello(0x0303, "two.example", []string{"h3"}, nil)
	b := quicSeal(t, 1, quicInitial, Client, dcid2, dcid2, nil, 0, quicCryptoFrame(0, ch))
	st := newTestStream(t)
	p := newQUICParser(&st.cfg)
	st.Feed(p, Client, a)
	st.Feed(p, Client, b)
	p.Close(st)
	xchgCheck(t, st)
	var got []string
	for _, x := range st.Exchanges {
		got = append(got, quicFields(x))
	}
	want := []string{
		"[version=QUICv1 dcid=0102030405060708 scid=c1c2c3c4][-]",
		"[version=QUICv1 sni=two.example alpn=h3 dcid=070707070707070707][-]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestQUICDrops: what cannot be read is counted on the record: an Initial
// cut by the snaplen is not opened (undecrypted); a hello longer than
// MaxHeader is dropped (crypto_dropped), and so is one in more pieces than
// quicMaxRanges.
func TestQUICDrops(t *testing.T) {
	a, b := quicScattered(t, 1, quicDCID, "cut.example")
	st := newTestStream(t)
	p := newQUICParser(&st.cfg)
	st.Feed(p, Client, a[:100])
	st.Feed(p, Client, b)
	p.Close(st)
	if got, want := quicFields(st.Exchanges[0]), "[version=QUICv1 dcid=0102030405060708 scid=c1c2c3c4 undecrypted=1][-]"; got != want {
		t.Fatalf("cut: got %s, want %s", got, want)
	}

	ch := tlsClientHello(0x0303, "big.example", nil, nil)
	big := tlsHSMsg(1, append(ch[4:], make([]byte, 1500)...)) // past MaxHeader 1024
	st = newTestStream(t)
	st.cfg.MaxHeader = 1024
	p = newQUICParser(&st.cfg)
	st.Feed(p, Client, quicSeal(t, 1, quicInitial, Client, quicDCID, quicDCID, nil, 0, quicCryptoFrame(0, big[:900])))
	st.Feed(p, Client, quicSeal(t, 1, quicInitial, Client, quicDCID, quicDCID, nil, 1, quicCryptoFrame(900, big[900:])))
	if c := p.crypto[Client]; c.buf != nil || c.dropped != len(big) {
		t.Fatalf("big: %d bytes kept, %d dropped, want 0 and %d", len(c.buf), c.dropped, len(big))
	}
	p.Close(st)
	if got := quicFields(st.Exchanges[0]); !strings.Contains(got, "crypto_dropped=1819") || strings.Contains(got, "sni=") {
		t.Fatalf("big: got %s, want crypto_dropped and no sni", got)
	}

	var frames []byte
	for i := 0; i <= quicMaxRanges; i++ {
		frames = append(frames, quicCryptoFrame(10+2*i, []byte{0xaa})...) // holes between
	}
	st = newTestStream(t)
	p = newQUICParser(&st.cfg)
	st.Feed(p, Client, quicSeal(t, 1, quicInitial, Client, quicDCID, quicDCID, nil, 0, frames))
	if c := p.crypto[Client]; !c.done || c.buf != nil || c.dropped != quicMaxRanges {
		t.Fatalf("scattered: done=%v, %d bytes kept, %d dropped", c.done, len(c.buf), c.dropped)
	}
	p.Close(st)
	xchgCheck(t, st)
	if got := quicFields(st.Exchanges[0]); !strings.Contains(got, "crypto_dropped=32") {
		t.Fatalf("scattered: got %s, want crypto_dropped=32", got)
	}
}

// TestQUICNotQUIC: a flow on 443 that starts with anything but a long
// header (DTLS, a QUIC connection seen midstream) is left alone.
func TestQUICNotQUIC(t *testing.T) {
	for _, b := range [][]byte{
		{0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}, // DTLS ClientHello record
		quic1RTT,
		{0xc0, 0, 0, 0, 1, 30, 1, 2}, // DCID longer than 20 bytes
	} {
		st := newTestStream(t)
		p := newQUICParser(&st.cfg)
		st.Feed(p, Client, b)
		if !p.Stopped() {
			t.Fatalf("%x: not stopped", b)
		}
		p.Close(st)
		if len(st.Exchanges) != 0 {
			t.Fatalf("%x: got %s", b, xchgSummary(st))
		}
	}
}

func TestQUICVarintAndPN(t *testing.T) {
	for _, c := range []struct {
		in string
		v  uint64
		n  int
	}{{"c2197c5eff14e88c", 151288809941952652, 8}, {"9d7f3e7d", 494878333, 4}, {"7bbd", 15293, 2}, {"25", 37, 1}, {"4025", 37, 2}, {"7b", 0, 0}} {
		b := unhex(t, c.in)
		if c.n == 0 {
			b = b[:0]
		}
		if v, n := quicVarint(b); v != c.v || n != c.n {
			t.Errorf("%s: got %d/%d, want %d/%d", c.in, v, n, c.v, c.n)
		}
	}
	// RFC 9000 A.3: largest 0xa82f30ea, truncated 0x9b32 in 16 bits.
	if got := quicDecodePN(0xa82f30ea, 0x9b32, 16); got != 0xa82f9b32 {
		t.Errorf("pn %#x, want 0xa82f9b32", got)
	}
}

// FuzzQUIC: the parser never panics and keeps the Stream's rules on any
// datagrams. Each datagram is a side byte and a 2-byte length, then its
// bytes.
func FuzzQUIC(f *testing.F) {
	frame := func(s byte, b []byte) []byte {
		return append([]byte{s, byte(len(b) >> 8), byte(len(b))}, b...)
	}
	var seed []byte
	for _, x := range []struct {
		s byte
		h string
	}{{0, rfc9001ClientInitial}, {1, rfc9001ServerInitial}} {
		b, _ := hex.DecodeString(x.h)
		seed = append(seed, frame(x.s, b)...)
	}
	seed = append(seed, frame(0, quic1RTT)...)
	f.Add(seed)
	v2, _ := hex.DecodeString(rfc9369ClientInitial)
	f.Add(frame(0, v2))
	a, b := quicScattered(f, 1, quicDCID, "fuzz.example")
	f.Add(append(frame(0, b), frame(0, a)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		st := newTestStream(t)
		st.cfg.MaxHeader = 1024
		p := newQUICParser(&st.cfg)
		for len(data) >= 3 {
			s, n := Side(data[0]&1), int(data[1])<<8|int(data[2])
			data = data[3:]
			n = min(n, len(data))
			if n == 0 {
				break
			}
			st.Feed(p, s, data[:n])
			data = data[n:]
		}
		p.Close(st)
		xchgCheck(t, st)
	})
}

// FuzzQUICFrames: any decrypted Initial payload (frames, CRYPTO pieces at
// any offsets) is read without a panic and within the limits. The
// payload is sealed with the real keys, so it reaches the frame reader.
func FuzzQUICFrames(f *testing.F) {
	a, _ := quicScattered(f, 1, quicDCID, "frames.example")
	f.Add(a[len(a)-200:])
	f.Add(unhex(f, rfcClientCrypto))
	f.Add([]byte{0x02, 0x00, 0x00, 0x3f, 0x00, 0x06, 0x00, 0x04, 1, 0, 0, 9})
	f.Add([]byte{0x1c, 0x01, 0x06, 0x05, 'h', 'e', 'l', 'l', 'o', 0x06, 0xbf, 0xff, 0xff, 0xff, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > 4000 {
			return
		}
		st := newTestStream(t)
		st.cfg.MaxHeader = 1024
		p := newQUICParser(&st.cfg)
		half := len(payload) / 2
		st.Feed(p, Client, quicSeal(t, 1, quicInitial, Client, quicDCID, quicDCID, nil, 0, payload[half:]))
		st.Feed(p, Client, quicSeal(t, 1, quicInitial, Client, quicDCID, quicDCID, nil, 1, payload[:half]))
		for s := range p.crypto {
			if c := &p.crypto[s]; cap(c.buf) > 1024 || c.nr > quicMaxRanges {
				t.Fatalf("side %d holds %d bytes in %d ranges", s, cap(c.buf), c.nr)
			}
		}
		p.Close(st)
		xchgCheck(t, st)
	})
}

// TestQUICPaddedDatagram: zeros after the Initial in its datagram are
// padding, not a 1-RTT packet; a 1-RTT packet coalesced after a Handshake
// packet is one, found by its DCID even with the fixed bit cleared (RFC
// 9287).
func TestQUICPaddedDatagram(t *testing.T) {
	a, b := quicScattered(t, 1, quicDCID, "padded.example")
	sh := tlsServerHello(0x0303, 0x1301, 0x0304, "", false)
	srv := quicSeal(t, 1, quicInitial, Server, quicDCID, quicSCID, quicSrv, 0, quicCryptoFrame(0, sh))
	st := newTestStream(t)
	p := newQUICParser(&st.cfg)
	st.Feed(p, Client, append(bytes.Clone(a), make([]byte, 300)...))
	st.Feed(p, Server, srv)
	st.Feed(p, Client, append(bytes.Clone(b), make([]byte, 300)...))
	if len(st.Exchanges) != 0 {
		t.Fatalf("padding taken for a 1-RTT packet: %s", xchgSummary(st))
	}
	hs := quicSeal(t, 1, quicHandshake, Client, []byte("handshake keys"), quicSrv, quicSCID, 0, make([]byte, 30))
	short := append([]byte{0x00}, quicSrv...) // fixed bit cleared
	short = append(short, make([]byte, 30)...)
	st.Feed(p, Client, append(hs, short...))
	if len(st.Exchanges) != 1 {
		t.Fatalf("coalesced 1-RTT packet not seen: %s", xchgSummary(st))
	}
	if got := field(st.Exchanges[0][0], "handshake_ns"); got != "3000" {
		t.Fatalf("handshake_ns %s, want 3000", got)
	}
	p.Close(st)
	xchgCheck(t, st)
}
