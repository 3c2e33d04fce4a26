package main

import (
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/spf13/cobra"

	"tapvault/fleet"
)

// newFleetEnrollCmd is tapvault fleet enroll: the fleet CA (fleet/ca.go).
func newFleetEnrollCmd() *cobra.Command {
	var (
		caDir, name, out string
		dns              []string
		ips              []string
		days             int
	)
	cmd := &cobra.Command{
		Use:   "enroll --ca DIR (init | --name NAME --out DIR [--dns NAME]... [--ip ADDR]...)",
		Short: "Create the fleet CA, or issue a sensor's or the centre's certificate from it (mutual TLS between centre and sensors)",
		Long: `enroll manages the fleet CA (docs/fleet.md, "Enrolment and mutual TLS").

  tapvault fleet enroll --ca /etc/tapvault/fleet-ca init
      creates the CA: DIR/ca.key (0600; keep it off the sensors) and DIR/ca.crt.
  tapvault fleet enroll --ca /etc/tapvault/fleet-ca --name sensor-a --out DIR [--ip 10.0.0.7]
      issues DIR/sensor-a.crt and DIR/sensor-a.key (0600), and copies
      DIR/ca.crt. One certificate serves both ends (client and server auth).

A sensor serves its fleet port with them (capture/serve --fleet-listen ADDR
--fleet-cert sensor-a.crt --fleet-key sensor-a.key --fleet-ca ca.crt); the
centre names them in fleet.yaml. The name is the certificate's identity: the
centre accepts a sensor only with the certificate issued for the name its
fleet.yaml gives it, whatever address it dials.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if caDir == "" {
				return errors.New("--ca DIR is required")
			}
			now := time.Now()
			if len(args) == 1 && args[0] == "init" {
				if name != "" || out != "" {
					return errors.New("init creates the CA only; issue certificates with --name and --out afterwards")
				}
				ca, err := fleet.InitCA(caDir, now)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "fleet CA created in %s (key %s, 0600; certificate %s, valid until %s)\n",
					caDir, fleet.CAKeyFile, fleet.CACertFile, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
				return nil
			}
			if len(args) > 0 {
				return fmt.Errorf("unexpected arguments %q: the only one is init", args)
			}
			if name == "" || out == "" {
				return errors.New("--name NAME and --out DIR are required (or init, to create the CA)")
			}
			if days <= 0 {
				return fmt.Errorf("--days %d: must be positive", days)
			}
			opts := fleet.IssueOptions{DNS: dns, Validity: time.Duration(days) * 24 * time.Hour}
			for _, s := range ips {
				ip := net.ParseIP(s)
				if ip == nil {
					return fmt.Errorf("--ip %q: not an IP address", s)
				}
				opts.IPs = append(opts.IPs, ip)
			}
			ca, err := fleet.LoadCA(caDir)
			if err != nil {
				return err
			}
			crt, key, err := ca.Enroll(out, name, opts, now)
			if err != nil {
				return err
			}
			serial := "?"
			if c, err := fleet.ReadCertificate(crt); err == nil {
				serial = fleet.FormatSerial(c.SerialNumber)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "enrolled %s: %s (serial %s), %s (0600), %s/%s; valid %d days\n", name, crt, serial, key, out, fleet.CACertFile, days)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&caDir, "ca", "", "the fleet CA's directory")
	f.StringVar(&name, "name", "", "the member's name (a sensor's name in fleet.yaml, or the centre's)")
	f.StringVar(&out, "out", "", "directory for NAME.crt, NAME.key and ca.crt")
	f.StringSliceVar(&dns, "dns", nil, "extra DNS names for the certificate (the name is always one)")
	f.StringSliceVar(&ips, "ip", nil, "IP addresses for the certificate")
	f.IntVar(&days, "days", int(fleet.DefaultValidity/(24*time.Hour)), "validity in days")
	return cmd
}

// newFleetRevokeCmd is tapvault fleet revoke: the CA's revocation list
// (fleet/revoke.go).
func newFleetRevokeCmd() *cobra.Command {
	var (
		caDir   string
		certs   []string
		serials []string
	)
	cmd := &cobra.Command{
		Use:   "revoke --ca DIR (--cert NAME.crt | --serial HEX)...",
		Short: "Revoke a member's certificate: add it to the fleet CA's revocation list (crl.pem)",
		Long: `revoke adds certificates to the fleet CA's revocation list, DIR/crl.pem (an
X.509 CRL signed by the CA, created at the first revocation), and says what
to do with it (docs/fleet.md, "Revoking a member"):

  tapvault fleet revoke --ca /etc/tapvault/fleet-ca --cert certs/sensor-b.crt
  tapvault fleet revoke --ca /etc/tapvault/fleet-ca --serial 3F2A...   # openssl x509 -noout -serial

Copy crl.pem, as ca.crt, to every sensor (capture/serve --fleet-crl
crl.pem) and to the centre (tls.crl in fleet.yaml). Each reads it again
when the file changes: the next handshake with a revoked member fails, on
either side, without a restart. Revoking twice changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if caDir == "" {
				return errors.New("--ca DIR is required")
			}
			if len(certs) == 0 && len(serials) == 0 {
				return errors.New("--cert FILE or --serial HEX: which certificate to revoke")
			}
			ca, err := fleet.LoadCA(caDir)
			if err != nil {
				return err
			}
			var list []*big.Int
			names := map[string]string{}
			for _, p := range certs {
				c, err := fleet.ReadCertificate(p)
				if err != nil {
					return err
				}
				if err := c.CheckSignatureFrom(ca.Cert); err != nil {
					return fmt.Errorf("%s was not issued by the CA in %s: revoking it there would do nothing", p, caDir)
				}
				list = append(list, c.SerialNumber)
				names[c.SerialNumber.String()] = c.Subject.CommonName
			}
			for _, s := range serials {
				n, err := fleet.ParseSerial(s)
				if err != nil {
					return err
				}
				list = append(list, n)
			}
			path, added, err := ca.Revoke(list, time.Now())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, n := range added {
				who := ""
				if cn := names[n.String()]; cn != "" {
					who = " (" + cn + ")"
				}
				fmt.Fprintf(out, "revoked serial %s%s\n", fleet.FormatSerial(n), who)
			}
			if len(added) < len(list) {
				fmt.Fprintf(out, "%d already revoked\n", len(list)-len(added))
			}
			fmt.Fprintf(out, "revocation list %s: copy it to every sensor (--fleet-crl) and to the centre (tls.crl in fleet.yaml)\n", path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&caDir, "ca", "", "the fleet CA's directory")
	f.StringSliceVar(&certs, "cert", nil, "a member's certificate to revoke (NAME.crt from tapvault fleet enroll)")
	f.StringSliceVar(&serials, "serial", nil, "a certificate serial to revoke, in hex (as enroll and openssl x509 -serial print it)")
	return cmd
}

func init() {
	fleetSubcommands["enroll"] = newFleetEnrollCmd
	fleetSubcommands["revoke"] = newFleetRevokeCmd
}
