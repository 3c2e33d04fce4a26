//go:build !linux

package dataplane

import (
	"errors"
	"time"

	"golang.org/x/net/bpf"
)

// Kernel capture (AF_PACKET) exists only on Linux; elsewhere these entry
// points say so.

var errNoAFPacket = errors.New("capture from an interface (AF_PACKET) needs Linux")

type AFPacketConfig struct {
	Iface                     string
	Filter                    []bpf.RawInstruction
	Snaplen                   int
	BlockSize, Blocks         int
	BlockTimeout, PollTimeout time.Duration
	Fanout                    bool
	FanoutID                  uint16
	NoPromisc                 bool
}

const (
	DefaultAFBlockSize    = 512 << 10
	DefaultAFBlocks       = 32
	DefaultAFBlockTimeout = 100 * time.Millisecond
	DefaultAFPollTimeout  = 250 * time.Millisecond
)

type AFPacket struct{}

var _ Source = (*AFPacket)(nil)

type AFPacketStats struct{ Packets, Drops, Freezes, Bytes uint64 }

func OpenAFPacket(cfg AFPacketConfig) (*AFPacket, error)               { return nil, errNoAFPacket }
func OpenAFPacketGroup(cfg AFPacketConfig, n int) ([]*AFPacket, error) { return nil, errNoAFPacket }
func IfaceLinkType(name string) (uint16, error)                        { return 0, errNoAFPacket }
func (s *AFPacket) LinkType() uint16                                   { return 0 }
func (s *AFPacket) Iface() string                                      { return "" }
func (s *AFPacket) Recv(b *Burst) (int, error)                         { return 0, errNoAFPacket }
func (s *AFPacket) Stats() (AFPacketStats, error)                      { return AFPacketStats{}, errNoAFPacket }
func (s *AFPacket) Close() error                                       { return nil }
