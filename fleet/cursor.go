package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"tapvault/internal/durable"
	"tapvault/msgstore"
	"tapvault/writer"
)

// The shipper's state lives in DIR/fleet/cursor. Its existence is what tells
// retention that the store is shipped (pipeline/retention.go): while it
// exists, message files the cursor has not passed are kept.

// CursorPath is the cursor file of the store under dir.
func CursorPath(dir string) string { return filepath.Join(dir, "fleet", "cursor") }

// Cursor is what has been shipped from one store: everything before
// Messages, and the flow summaries of the blocks before Flows (the group
// starting at Flows may have grown since it was shipped, so it is shipped
// again until a later group exists; FlowsBlocks counts its blocks then).
type Cursor struct {
	Messages    msgstore.Cursor
	Flows       writer.Ref
	FlowsBlocks int
}

type cursorFile struct {
	Version     int    `json:"version"`
	Messages    string `json:"messages"`
	Flows       string `json:"flows"`
	FlowsBlocks int    `json:"flows_blocks"`
}

// LoadCursor reads the cursor of the store under dir; ok is false when
// there is none (the store is not shipped, or not yet).
func LoadCursor(dir string) (c Cursor, ok bool, err error) {
	path := CursorPath(dir)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Cursor{}, false, nil
	}
	if err != nil {
		return Cursor{}, false, fmt.Errorf("read fleet cursor: %w", err)
	}
	var f cursorFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 {
		return Cursor{}, true, fmt.Errorf("fleet cursor %q is damaged (%v): remove it to ship the store again from its start (duplicates are harmless)", path, err)
	}
	if c.Messages, err = msgstore.ParseCursor(f.Messages); err != nil {
		return Cursor{}, true, fmt.Errorf("fleet cursor %q: %w", path, err)
	}
	var seg, off uint32
	if _, err := fmt.Sscanf(f.Flows, "%d:%d", &seg, &off); err != nil {
		return Cursor{}, true, fmt.Errorf("fleet cursor %q: flows %q: %w", path, f.Flows, err)
	}
	c.Flows, c.FlowsBlocks = writer.MakeRef(seg, off), f.FlowsBlocks
	return c, true, nil
}

// SaveCursor makes c durable as the cursor of the store under dir: written
// to a temporary file, fsynced, renamed over the old one, and the directory
// fsynced, so a crash leaves the old cursor or the new one, never a mix.
func SaveCursor(dir string, c Cursor) error {
	path := CursorPath(dir)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save fleet cursor: %w", err)
	}
	b, _ := json.Marshal(cursorFile{Version: 1, Messages: c.Messages.String(), Flows: c.Flows.String(), FlowsBlocks: c.FlowsBlocks})
	if err := durable.WriteFile(path, append(b, '\n')); err != nil {
		return fmt.Errorf("save fleet cursor: %w", err)
	}
	return nil
}
