package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/pflag"

	"tapvault/api"
	"tapvault/fleet"
)

// fleetListen is a sensor's fleet port (docs/fleet.md): the API served to
// the centre over mutual TLS with certificates from tapvault fleet enroll.
// capture and serve both take these flags.
type fleetListen struct {
	addr, cert, key, ca string
}

func (fl *fleetListen) flags(f *pflag.FlagSet) {
	f.StringVar(&fl.addr, "fleet-listen", "", "serve the API to the fleet's centre on this address, over mutual TLS (needs --fleet-cert, --fleet-key, --fleet-ca); no token there: the client certificate is the credential")
	f.StringVar(&fl.cert, "fleet-cert", "", "this sensor's certificate from tapvault fleet enroll (PEM)")
	f.StringVar(&fl.key, "fleet-key", "", "the private key of --fleet-cert (PEM)")
	f.StringVar(&fl.ca, "fleet-ca", "", "the fleet CA's certificate (ca.crt): only clients it signed are served")
}

// listen checks the flags, loads the certificates and binds the port, so a
// mistake fails the command at start. It returns nil when no fleet port
// was asked for.
func (fl *fleetListen) listen() (net.Listener, func(context.Context, *api.Server), error) {
	if fl.addr == "" {
		if fl.cert != "" || fl.key != "" || fl.ca != "" {
			return nil, nil, errors.New("--fleet-cert, --fleet-key and --fleet-ca need --fleet-listen ADDR")
		}
		return nil, nil, nil
	}
	conf, err := fleet.ServerTLSConfig(fl.cert, fl.key, fl.ca)
	if err != nil {
		return nil, nil, fmt.Errorf("--fleet-listen: %w", err)
	}
	ln, err := net.Listen("tcp", fl.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--fleet-listen: %w", err)
	}
	serve := func(ctx context.Context, srv *api.Server) {
		if err := srv.ServeFleet(ctx, ln, conf); err != nil {
			slog.Error("fleet port stopped", "addr", fl.addr, "err", err)
		}
	}
	return ln, serve, nil
}
