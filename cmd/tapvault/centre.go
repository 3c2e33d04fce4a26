package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"tapvault/centre"
	"tapvault/fleet"
	"tapvault/web"
)

// runCentre is tapvault serve --fleet fleet.yaml: the fleet's API and web
// UI (package centre, docs/fleet.md). listen overrides the file's listen
// when given on the command line.
func runCentre(cmd *cobra.Command, fleetFile, listen, token string) error {
	cfg, err := centre.LoadConfig(fleetFile)
	if err != nil {
		return err
	}
	if cmd.Flags().Changed("listen") {
		cfg.Listen = listen
	}
	ch, err := fleet.NewClient(cfg.ClickHouse.URL, cfg.ClickHouse.Database)
	if err != nil {
		return fmt.Errorf("fleet config %s: %w", fleetFile, err)
	}
	opts := centre.Options{Token: token, Logger: slog.Default(), UI: web.FS()}
	c, err := centre.New(cfg, ch, opts)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return c.ListenAndServe(ctx, func(addr string) {
		fmt.Fprintf(cmd.OutOrStdout(), "fleet centre on http://%s/ (%d sensors)\n", addr, len(cfg.Sensors))
	})
}
