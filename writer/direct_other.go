//go:build !linux

package writer

import (
	"errors"
	"os"
)

var errNoDirect = errors.New("O_DIRECT writes are implemented on Linux only")

func setDirect(*os.File) error { return errNoDirect }

const directProbe = "direct.probe"

func probeDirect(string) error { return errNoDirect }

func fallocate(*os.File, int64, int64) error { return errNoDirect }
