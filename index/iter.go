package index

import (
	"errors"
	"slices"

	"tapvault/writer"
)

// Iterator walks block refs in ascending order, without repeats, like a
// prometheus posting list. The zero position is before the first ref.
type Iterator interface {
	// Next moves to the next ref and reports whether there is one.
	Next() bool
	// Seek moves to the first ref >= ref and reports whether there is one.
	// It never moves backwards: if the current ref is already >= ref it
	// stays.
	Seek(ref writer.Ref) bool
	// At is the current ref, valid after Next or Seek returned true.
	At() writer.Ref
	// Err is the error that ended the iteration, if any.
	Err() error
	// Close releases the iterator's resources (a Badger read transaction).
	Close() error
}

var (
	_ Iterator = (*sliceIter)(nil)
	_ Iterator = (*unionIter)(nil)
	_ Iterator = (*intersectIter)(nil)
	_ Iterator = (*errIter)(nil)
	_ Iterator = (*diskIter)(nil)
)

// sliceIter iterates a sorted, deduplicated slice.
type sliceIter struct {
	refs []writer.Ref
	i    int
}

func newSliceIter(refs []writer.Ref) *sliceIter { return &sliceIter{refs: refs, i: -1} }

func (it *sliceIter) Next() bool {
	if it.i < len(it.refs) {
		it.i++
	}
	return it.i < len(it.refs)
}

func (it *sliceIter) Seek(ref writer.Ref) bool {
	if it.i < 0 {
		it.i = 0
	}
	if it.i < len(it.refs) && it.refs[it.i] < ref {
		j, _ := slices.BinarySearch(it.refs[it.i:], ref)
		it.i += j
	}
	return it.i < len(it.refs)
}

func (it *sliceIter) At() writer.Ref { return it.refs[it.i] }
func (it *sliceIter) Err() error     { return nil }
func (it *sliceIter) Close() error   { return nil }

// errIter is an empty iterator that reports err.
type errIter struct{ err error }

func (it *errIter) Next() bool           { return false }
func (it *errIter) Seek(writer.Ref) bool { return false }
func (it *errIter) At() writer.Ref       { return 0 }
func (it *errIter) Err() error           { return it.err }
func (it *errIter) Close() error         { return nil }

// sortUnique sorts refs and removes repeats in place.
func sortUnique(refs []writer.Ref) []writer.Ref {
	slices.Sort(refs)
	return slices.Compact(refs)
}

// Union iterates the refs that any of its iterators yields. Closing it
// closes them all.
func Union(its ...Iterator) Iterator {
	switch len(its) {
	case 0:
		return newSliceIter(nil)
	case 1:
		return its[0]
	}
	return &unionIter{its: its, ok: make([]bool, len(its))}
}

type unionIter struct {
	its     []Iterator
	ok      []bool // its[i] is positioned on a valid ref
	started bool
	cur     writer.Ref
	done    bool
}

func (u *unionIter) pick() bool {
	found := false
	for i, it := range u.its {
		if u.ok[i] && (!found || it.At() < u.cur) {
			u.cur, found = it.At(), true
		}
	}
	u.done = !found
	return found
}

func (u *unionIter) Next() bool {
	if u.done {
		return false
	}
	if !u.started {
		u.started = true
		for i, it := range u.its {
			u.ok[i] = it.Next()
		}
		return u.pick()
	}
	for i, it := range u.its {
		if u.ok[i] && it.At() == u.cur {
			u.ok[i] = it.Next()
		}
	}
	return u.pick()
}

func (u *unionIter) Seek(ref writer.Ref) bool {
	if u.done {
		return false
	}
	if u.started && u.cur >= ref {
		return true
	}
	u.started = true
	for i, it := range u.its {
		u.ok[i] = it.Seek(ref)
	}
	return u.pick()
}

func (u *unionIter) At() writer.Ref { return u.cur }

func (u *unionIter) Err() error {
	var errs []error
	for _, it := range u.its {
		errs = append(errs, it.Err())
	}
	return errors.Join(errs...)
}

func (u *unionIter) Close() error {
	var errs []error
	for _, it := range u.its {
		errs = append(errs, it.Close())
	}
	return errors.Join(errs...)
}

// Intersect iterates the refs that all of its iterators yield. Closing it
// closes them all.
func Intersect(its ...Iterator) Iterator {
	switch len(its) {
	case 0:
		return newSliceIter(nil)
	case 1:
		return its[0]
	}
	return &intersectIter{its: its}
}

type intersectIter struct {
	its  []Iterator
	cur  writer.Ref
	done bool
}

// align leapfrogs from target until every iterator sits on one ref.
func (x *intersectIter) align(target writer.Ref) bool {
	for {
		agreed := true
		for _, it := range x.its {
			if !it.Seek(target) {
				x.done = true
				return false
			}
			if r := it.At(); r > target {
				target, agreed = r, false
			}
		}
		if agreed {
			x.cur = target
			return true
		}
	}
}

func (x *intersectIter) Next() bool {
	if x.done {
		return false
	}
	if !x.its[0].Next() {
		x.done = true
		return false
	}
	return x.align(x.its[0].At())
}

func (x *intersectIter) Seek(ref writer.Ref) bool {
	if x.done {
		return false
	}
	if !x.its[0].Seek(ref) {
		x.done = true
		return false
	}
	return x.align(x.its[0].At())
}

func (x *intersectIter) At() writer.Ref { return x.cur }

func (x *intersectIter) Err() error {
	var errs []error
	for _, it := range x.its {
		errs = append(errs, it.Err())
	}
	return errors.Join(errs...)
}

func (x *intersectIter) Close() error {
	var errs []error
	for _, it := range x.its {
		errs = append(errs, it.Close())
	}
	return errors.Join(errs...)
}
