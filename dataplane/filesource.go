package dataplane

import (
	"fmt"
	"io"
	"os"

	"tapvault/pcap"
)

// FileSource reads a pcap or pcapng capture file as a Source, for import.
// The format is read by pcap.Reader (see there for what is understood).
//
// Reading allocates nothing per packet: packet bytes are read straight into
// an arena owned by the FileSource, which Recv reuses.
//
// A file that is cut short inside a record ends with io.EOF like a complete
// one: every packet before the cut is delivered, and Warning then tells where
// the file was cut. Structurally corrupt files (impossible lengths, unknown
// interfaces) end with an error wrapping pcap.ErrCorrupt.
type FileSource struct {
	path   string
	c      io.Closer // the file; nil for in-memory input
	r      *pcap.Reader
	size   int64
	arena  []byte // packet bytes of the current burst; len(arena) is fixed
	closed bool
}

var _ Source = (*FileSource)(nil)

// MaxFilePacket is the largest captured length FileSource delivers. It equals
// workers.MaxPacketSize (dataplane must not import workers, which is
// downstream of it): a pcapng packet that is longer is cut to this length
// with its original length kept, and a pcap record that claims more is
// treated as corruption, as libpcap does.
const MaxFilePacket = pcap.MaxSnapLen

// arenaSize is the packet arena of one burst. It holds at least one packet of
// MaxFilePacket bytes, so a burst always makes progress; a burst ends early
// when the next packet would not fit.
const arenaSize = 1 << 20

// OpenFile opens the pcap or pcapng file at path and reads its file header
// (pcapng: its first Section Header Block).
func OpenFile(path string) (*FileSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open trace %q: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open trace %q: %w", path, err)
	}
	s, err := newFileSource(path, f, st.Size(), f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// newFileSource reads the file header from r, which holds size bytes. c, if
// not nil, is closed by Close.
func newFileSource(path string, r io.Reader, size int64, c io.Closer) (*FileSource, error) {
	pr, err := pcap.NewReader(r, path)
	if err != nil {
		return nil, err
	}
	return &FileSource{path: path, c: c, r: pr, size: size, arena: make([]byte, arenaSize)}, nil
}

// Recv fills b with up to MaxBurst packets. Packet data is copied into an
// arena owned by s: it is valid until the next Recv or Close. Recv returns
// io.EOF once the file is exhausted (then see Warning), or an error wrapping
// pcap.ErrCorrupt for a structurally invalid file, after the packets before
// the fault have been delivered.
func (s *FileSource) Recv(b *Burst) (int, error) {
	b.N = 0
	if s.closed {
		return 0, fmt.Errorf("read trace %q: source closed", s.path)
	}
	used := 0
	n := 0
	var err error
	for n < MaxBurst {
		var ci pcap.CaptureInfo
		var data []byte
		ci, data, err = s.r.ReadPacket(s.arena[used:])
		if err != nil {
			if err == io.ErrShortBuffer {
				err = nil // the packet stays buffered for the next burst
			}
			break
		}
		used += len(data)
		p := &b.Pkts[n]
		p.Data = data
		p.TS = ci.TS
		p.WireLen = ci.WireLen
		p.LinkType = ci.LinkType
		p.Iface = ci.Iface
		n++
	}
	b.N = n
	if err != nil && n == 0 {
		return 0, err // sticky in the reader: the next Recv returns it again
	}
	return n, nil
}

// Close releases the file. Packets of the last burst become invalid.
func (s *FileSource) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.arena = nil
	if s.c == nil {
		return nil
	}
	if err := s.c.Close(); err != nil {
		return fmt.Errorf("close trace %q: %w", s.path, err)
	}
	return nil
}

// Size is the file's size in bytes when it was opened.
func (s *FileSource) Size() int64 { return s.size }

// Offset is how many bytes of the file have been consumed, for progress
// display: Offset()/Size() is the fraction read.
func (s *FileSource) Offset() int64 { return s.r.Offset() }

// Interfaces lists the interfaces seen so far, indexed by Packet.Iface. A
// pcapng file may describe more interfaces later, so the list can grow as
// Recv goes on. The returned slice is a copy.
func (s *FileSource) Interfaces() []pcap.Interface { return s.r.Interfaces() }

// Warning reports, once Recv has returned io.EOF, whether the file was cut
// short inside a record. The error wraps pcap.ErrTruncated and says at which
// offset and after how many packets; every packet before the cut was
// delivered. It is nil for a complete file.
func (s *FileSource) Warning() error { return s.r.Warning() }
