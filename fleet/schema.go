package fleet

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultDatabase is the ClickHouse database the fleet's tables live in
// unless told otherwise.
const DefaultDatabase = "tapvault"

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration is one schema step: migrations/NNN_name.sql, applied once, in
// version order, and recorded in schema_migrations.
type Migration struct {
	Version    int
	Name       string
	Statements []string
}

var migrationName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(\d{3})_([a-z0-9_]+)\.sql$`) })

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	ents, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range ents {
		m := migrationName().FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("BUG: migration file %q is not named NNN_name.sql", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		v, _ := strconv.Atoi(m[1])
		out = append(out, Migration{Version: v, Name: m[2], Statements: splitStatements(string(b))})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("BUG: two migrations numbered %03d", out[i].Version)
		}
	}
	return out, nil
}

// splitStatements cuts a migration into statements at lines ending in ';'
// (the HTTP interface takes one statement per request), dropping comment
// lines.
func splitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

var identifier = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })

// MigrateResult says what Migrate did.
type MigrateResult struct {
	CreatedDatabase bool
	Applied         []string // "NNN_name" of the migrations applied now
	Present         []string // those found already applied
}

// Migrate creates database (if missing) and the schema_migrations table,
// then applies, in order, each embedded migration not yet recorded there.
// It is idempotent: a second run applies nothing. The statements are
// themselves CREATE ... IF NOT EXISTS, so a run cut short between a
// statement and its record is safe to repeat.
func Migrate(ctx context.Context, c *Client, database string) (MigrateResult, error) {
	return MigrateSharded(ctx, c, database, "")
}

// createTable finds the table a migration statement creates.
var createTable = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(CREATE TABLE IF NOT EXISTS )([A-Za-z_][A-Za-z0-9_]*)(\s)`)
})

// LocalSuffix names a node's own table under a sharded layout: records
// holds the node's shard in records_local, and records is a Distributed
// table over every node's records_local.
const LocalSuffix = "_local"

// MigrateSharded is Migrate for one node of a cluster (cluster non-empty,
// a name in the server's <remote_servers>): each table is created as
// NAME_local, and NAME as a Distributed table over the cluster's NAME_local
// tables, sharded by cityHash64(sensor) so that every copy of a sensor's
// row lands on one shard, where ReplacingMergeTree finds it. Run it on
// every node (18.16 has no ON CLUSTER without ZooKeeper); shippers and the
// centre then use the usual names on any node.
func MigrateSharded(ctx context.Context, c *Client, database, cluster string) (MigrateResult, error) {
	var res MigrateResult
	if !identifier().MatchString(database) {
		return res, fmt.Errorf("database name %q: use letters, digits and _ only", database)
	}
	if cluster != "" && !identifier().MatchString(cluster) {
		return res, fmt.Errorf("cluster name %q: use letters, digits and _ only", cluster)
	}
	migs, err := Migrations()
	if err != nil {
		return res, err
	}
	root := c.WithDatabase("")
	n, err := root.QueryValue(ctx, "SELECT count() FROM system.databases WHERE name = '"+database+"'")
	if err != nil {
		return res, fmt.Errorf("migrate: %w", err)
	}
	if n == "0" {
		if err := root.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+database); err != nil {
			return res, fmt.Errorf("migrate: create database: %w", err)
		}
		res.CreatedDatabase = true
	}
	db := c.WithDatabase(database)
	if err := db.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    applied_ns Int64
) ENGINE = MergeTree ORDER BY version`); err != nil {
		return res, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	done := map[int]bool{}
	rows, err := db.Query(ctx, "SELECT DISTINCT version FROM schema_migrations")
	if err != nil {
		return res, fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	for _, r := range rows {
		v, _ := strconv.Atoi(fmt.Sprint(r["version"]))
		done[v] = true
	}
	for _, m := range migs {
		id := fmt.Sprintf("%03d_%s", m.Version, m.Name)
		if done[m.Version] {
			res.Present = append(res.Present, id)
			continue
		}
		for _, st := range m.Statements {
			stmts := []string{st}
			if sm := createTable().FindStringSubmatch(st); cluster != "" && sm != nil {
				name := sm[2]
				local := name + LocalSuffix
				stmts = []string{
					createTable().ReplaceAllString(st, "${1}"+local+"${3}"),
					fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS %s ENGINE = Distributed(%s, %s, %s, cityHash64(sensor))",
						name, local, cluster, database, local),
				}
			}
			for _, st := range stmts {
				if err := db.Exec(ctx, st); err != nil {
					return res, fmt.Errorf("migrate: apply %s: %w", id, err)
				}
			}
		}
		row := map[string]any{"version": m.Version, "name": m.Name, "applied_ns": time.Now().UnixNano()}
		if err := db.Insert(ctx, "schema_migrations", []any{row}); err != nil {
			return res, fmt.Errorf("migrate: record %s: %w", id, err)
		}
		res.Applied = append(res.Applied, id)
	}
	return res, nil
}

// CheckSchema returns an error saying to run `tapvault fleet init` when
// database lacks a migration this binary knows.
func CheckSchema(ctx context.Context, c *Client, database string) error {
	migs, err := Migrations()
	if err != nil {
		return err
	}
	want := migs[len(migs)-1].Version
	v, err := c.WithDatabase(database).QueryValue(ctx, "SELECT max(version) FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("check the fleet schema in %s: %w (run tapvault fleet init --clickhouse URL --database %s)", database, err, database)
	}
	if got, _ := strconv.Atoi(v); got < want {
		return fmt.Errorf("the fleet schema in %s is at migration %s, this tapvault needs %03d: run tapvault fleet init --clickhouse URL --database %s", database, v, want, database)
	}
	return nil
}
