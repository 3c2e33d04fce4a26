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
	addr, cert, key, ca, crl string
}

func (fl *fleetListen) flags(f *pflag.FlagSet) {
	f.StringVar(&fl.addr, "fleet-listen", "", "serve the API to the fleet's centre on this address, over mutual TLS (needs --fleet-cert, --fleet-key, --fleet-ca); no token there: the client certificate is the credential")
	f.StringVar(&fl.cert, "fleet-cert", "", "this sensor's certificate from tapvault fleet enroll (PEM)")
	f.StringVar(&fl.key, "fleet-key", "", "the private key of --fleet-cert (PEM)")
	f.StringVar(&fl.ca, "fleet-ca", "", "the fleet CA's certificate (ca.crt): only clients it signed are served")
	f.StringVar(&fl.crl, "fleet-crl", "", "the fleet CA's revocation list (crl.pem from tapvault fleet revoke): clients it revokes are refused; read again when it changes")
}

// listen checks the flags, loads the certificates and binds the port, so a
// mistake fails the command at start. It returns nil when no fleet port
// was asked for.
func (fl *fleetListen) listen() (net.Listener, func(context.Context, *api.Server), error) {
	if fl.addr == "" {
		if fl.cert != "" || fl.key != "" || fl.ca != "" || fl.crl != "" {
			return nil, nil, errors.New("--fleet-cert, --fleet-key, --fleet-ca and --fleet-crl need --fleet-listen ADDR")
		}
		return nil, nil, nil
	}
	conf, err := fleet.ServerTLSConfig(fl.cert, fl.key, fl.ca, fleet.WithCRL(fl.crl))
	if err != nil {
		return nil, nil, fmt.Errorf("--fleet-listen: %w", err)
	}
	ln, err := net.Listen("tcp", fl.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--fleet-listen: %w", err)
	}
	// A client revoked while connected is cut off too, not only refused
	// at its next handshake.
	ln = fleet.TrackConns(ln)
	serve := func(ctx context.Context, srv *api.Server) {
		if err := srv.ServeFleet(ctx, ln, conf); err != nil {
			slog.Error("fleet port stopped", "addr", fl.addr, "err", err)
		}
	}
	return ln, serve, nil
}
