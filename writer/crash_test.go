package writer

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"tapvault/block"
	"testing"
	"time"
)

const (
	crashDirEnv  = "TAPVAULT_WRITER_CRASH_DIR"
	crashSeedEnv = "TAPVAULT_WRITER_CRASH_SEED"
	crashIOEnv   = "TAPVAULT_WRITER_CRASH_IO"
	crashBlock   = 48 << 10
)

// TestCrashChild is the process TestCrashKill9 kills: it writes blocks until
// killed and prints "ref seed" for each block once its commit hook ran.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestCrashKill9")
	}
	seed, err := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	if err != nil {
		t.Fatalf("bad %s: %v", crashSeedEnv, err)
	}
	io, err := ParseIOMode(os.Getenv(crashIOEnv))
	if err != nil {
		t.Fatalf("bad %s: %v", crashIOEnv, err)
	}
	minTSToSeed := func(ts int64) uint64 {
		return uint64((ts - 1_700_000_000_000_000_000) / 1_000_000_000)
	}
	line := make([]byte, 0, 64)
	hook := func(m BlockMeta, _ *block.Summary) {
		line = strconv.AppendUint(line[:0], uint64(m.Ref), 10)
		line = append(line, ' ')
		line = strconv.AppendUint(line, minTSToSeed(m.MinTS), 10)
		line = append(line, '\n')
		os.Stdout.Write(line) // unbuffered: printed means committed
	}
	w, err := Open(Options{Dir: dir, SegmentSize: 512 << 10, SyncEvery: 2 * time.Millisecond,
		QueueLen: 8, Compressors: 2, IO: io, CommitHook: hook, Logger: quietLog})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	pool := block.NewPool(8, crashBlock, 16)
	for s := seed; ; s++ {
		b := getBlock(t, pool)
		fillBlock(b, s, crashBlock, int(s%2))
		for !w.Submit(b) {
			time.Sleep(time.Millisecond)
		}
	}
}

// TestCrashKill9 kills a writing process with SIGKILL at a random moment,
// three times over the same store: after each, Open must recover, and every
// block whose commit was reported must read back intact and verify. It runs
// with buffered and with O_DIRECT writes (whose last page of a group is
// rewritten by the next).
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a writer process")
	}
	for _, io := range ioModes {
		t.Run("io="+io.String(), func(t *testing.T) {
			skipNoDirect(t, io)
			testCrashKill9(t, io)
		})
	}
}

func testCrashKill9(t *testing.T, io IOMode) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	committed := map[Ref]uint64{}
	for round := 0; round < 3; round++ {
		seed := uint64(round+1) * 1_000_000
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashSeedEnv+"="+strconv.FormatUint(seed, 10), crashIOEnv+"="+io.String())
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1<<16)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text() // only whole lines: a cut last line is dropped
			}
			close(lines)
		}()
		var got []string
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("child exited before committing anything")
			}
			got = append(got, l)
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatal("child committed nothing in 20s")
		}
		time.Sleep(time.Duration(100+rng.IntN(600)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill: %v", err)
		}
		for l := range lines {
			got = append(got, l)
		}
		cmd.Wait()
		for _, l := range got {
			var ref, s uint64
			if _, err := fmt.Sscanf(l, "%d %d", &ref, &s); err != nil {
				t.Fatalf("child line %q: %v", l, err)
			}
			committed[Ref(ref)] = s
		}

		w, err := Open(Options{Dir: dir, Logger: quietLog})
		if err != nil {
			t.Fatalf("round %d: Open after kill: %v", round, err)
		}
		rec := w.Recovery()
		if err := w.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
		if len(rec.Corrupt) != 0 {
			t.Fatalf("round %d: recovery found corruption: %v", round, rec.Corrupt)
		}
		t.Logf("round %d: %d blocks committed so far; recovery %+v", round, len(committed), rec)

		r, err := OpenReader(dir)
		if err != nil {
			t.Fatal(err)
		}
		pool := block.NewPool(1, crashBlock, 16)
		var buf BlockBuf
		for ref, s := range committed {
			b := getBlock(t, pool)
			fillBlock(b, s, crashBlock, int(s%2))
			checkBlock(t, r, ref, wantOf(b), &buf)
			b.Release()
		}
		r.Close()
		rep, err := Verify(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || rep.Blocks < len(committed) {
			t.Fatalf("round %d: Verify got %d good, %d bad; want at least %d good and none bad",
				round, rep.Blocks, rep.BadBlocks, len(committed))
		}
	}
	if len(committed) == 0 {
		t.Fatal("no block was committed in any round")
	}
}
